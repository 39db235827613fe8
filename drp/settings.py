"""Settings in one typed object, read from the environment (prefix DRP_) or a .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
def get_settings() -> Settings:
    return Settings()
