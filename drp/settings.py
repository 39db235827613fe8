"""Settings in one typed object, read from the environment (prefix DRP_) or a .env file."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from notifications.render import MAIL_DETAIL

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"


class Settings(BaseSettings):
    # extra="ignore": Prefect and other tools read the same .env file.
    model_config = SettingsConfigDict(
        env_prefix="DRP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///./var/drp.db",
        description="SQLAlchemy URL; PostgreSQL in production (postgresql+psycopg://...)",
    )
    protocol: Path = Field(default=CONFIG_DIR / "protocol.yaml")
    themes: Path = Field(default=CONFIG_DIR / "themes.yaml")
    timezone: str = "Europe/London"
    mail_dir: Path = Path("./var/mail")
    base_url: str = "http://127.0.0.1:8000"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_tls: str | None = None
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "drp@localhost"
    digest_anchor: date = Field(
        default=date(2024, 1, 1), description="a Monday: fortnights are counted from it"
    )
    digest_empty_note: bool = Field(
        default=True, description="send a short 'nothing outstanding' digest rather than none"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="signs session cookies; unset: generated once into ./var/secret_key",
    )
    session_idle_minutes: int = Field(default=30, ge=5, le=720)
    session_max_hours: int = Field(default=12, ge=1, le=72)
    login_max_failures: int = Field(default=5, ge=3, le=50)
    login_lockout_minutes: int = Field(default=15, ge=1, le=1440)
    login_client_max_failures: int = Field(
        default=50, ge=10, le=10000,
        description="failed sign-ins from one address, any usernames, per lock-out period")
    login_account_max_failures: int = Field(
        default=100, ge=10, le=10000,
        description="failed sign-ins for one username a day from addresses it has not"
                    " signed in from (its own addresses are not locked by them)")
    oidc_metadata_url: str | None = Field(
        default=None, description="the council identity provider's OpenID configuration URL"
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    max_request_bytes: int = Field(
        default=2_000_000, ge=100_000, description="a larger request body is refused (413)"
    )
    page_cache_mb: int = Field(
        default=32, ge=0, le=4096,
        description="pages kept to answer again while nothing they show has changed (0: none)")
    templates_dir: Path | None = Field(
        default=None, description="a council's own message templates, searched first"
    )
    # Data minimisation (UK GDPR Article 5(1)(c)): by default an e-mail carries no free text,
    # only the child's reference, the alert's number and stage, what to do and the link; a
    # council that wants the summary in its e-mails sets `summary` knowingly (docs/
    # data-protection.md). The rule itself is notifications.render.minimise.
    mail_detail: str = Field(
        default="reference",
        description="reference: no free text in e-mails; summary: the alert's summary too")
    # Retention (UK GDPR Article 5(1)(e); docs/data-protection.md "Retention"): what `drp
    # retention run` removes, and when. A closed alert's record (its events, actions,
    # referral, links, corrections, e-mails and access-log rows) goes on the child's
    # birthday below where the organisation file gives the date of birth; otherwise the
    # years after closure below. 25 years after closure is never earlier than a 25th
    # birthday, whatever the child's age at closure; a council keeping looked-after
    # children's files to the 75th birthday sets 75 for both.
    retention_birthday: int = Field(
        default=25, ge=18, le=120,
        description="a closed alert's record goes on the child's birthday of this age")
    retention_years_after_closure: int = Field(
        default=25, ge=1, le=120,
        description="where the child's date of birth is not known: years after closure")
    retention_access_log_years: int = Field(
        default=2, ge=1, le=100, description="access-log rows go this many years after")
    retention_mail_days: int = Field(
        default=90, ge=1, le=36500,
        description="an e-mail's body and context are blanked this many days after sending")
    retention_correction_years: int = Field(
        default=2, ge=1, le=100,
        description="a corrected text's original is kept this long after its correction")
    retention_batch: int = Field(
        default=500, ge=1, le=100_000,
        description="rows (alerts: records) removed per transaction")
    # Case notes POSTed to the council's case-management system as they are written
    # (drp.casenotes, notifications/webhook.py; docs/casenotes.md): unset, none are sent.
    webhook_url: str | None = Field(
        default=None, description="where each new case note is POSTed (https://...)")
    webhook_secret: SecretStr | None = Field(
        default=None, description="signs each POST: X-Drp-Signature, HMAC-SHA256 of the body")

    @field_validator("smtp_tls")
    @classmethod
    def _tls_mode(cls, value: str | None) -> str | None:
        if value is not None and value not in ("none", "starttls", "ssl"):
            raise ValueError(f"{value!r} is not a TLS mode; use none, starttls or ssl")
        return value

    @field_validator("mail_detail")
    @classmethod
    def _mail_detail(cls, value: str) -> str:
        if value not in MAIL_DETAIL:
            raise ValueError(f"{value!r} is not a level of detail for e-mails; use"
                             f" {' or '.join(MAIL_DETAIL)}")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("https://", "http://")) or len(value) > 254 \
                or any(ch.isspace() for ch in value):
            raise ValueError(f"{value[:60]!r} is not an http(s) address of at most 254"
                             " characters; give the receiver's https:// address")
        return value

    @model_validator(mode="after")
    def _webhook_signed(self) -> Settings:
        if self.webhook_url and not (self.webhook_secret and len(
                self.webhook_secret.get_secret_value()) >= 16):
            raise ValueError("DRP_WEBHOOK_URL is set without DRP_WEBHOOK_SECRET (16 characters"
                             " or more, shared with the receiver): every note is signed")
        return self

    @field_validator("digest_anchor")
    @classmethod
    def _monday(cls, value: date) -> date:
        if value.weekday() != 0:
            raise ValueError(f"{value.isoformat()} is not a Monday; fortnights start on Mondays")
        return value

    @property
    def smtp_tls_mode(self) -> str:
        """As set, or by port: 465 implicit TLS, 587 STARTTLS, otherwise none."""
        if self.smtp_tls:
            return self.smtp_tls
        return {465: "ssl", 587: "starttls"}.get(self.smtp_port, "none")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use e.g. Europe/London") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def get_settings() -> Settings:  # read once per process
    return Settings()
