"""Sign-in: argon2 password hashes, server-side sessions in signed HttpOnly SameSite cookies,
CSRF tokens, login throttling with lock-out, idle timeout, and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..errors import BadValue
from ..keys import PASSWORDS as _hasher
from ..keys import hash_password
from ..models import ApiToken, LoginAttempt, Person, WebSession
from ..settings import Settings

SESSION_COOKIE = "drp_session"
LOGIN_COOKIE = "drp_login"
# Verifying against this keeps the time the same whether or not the username exists.
_DUMMY_HASH = _hasher.hash("drp-dummy-password")


def set_password(engine: Engine, username: str, password: str) -> None:
    hashed = hash_password(password)
    with Session(engine) as s:
        person = s.exec(select(Person).where(Person.username == username)).first()
        if person is None:
            raise BadValue(f"there is no person {username!r}; check the username")
        person.password_hash = hashed
        s.add(person)
        # A new password ends every session of the old one.
        s.execute(update(WebSession).where(col(WebSession.person_id) == person.id,
                                           col(WebSession.revoked_at).is_(None))
                  .values(revoked_at=func.now()))
        s.commit()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Signed:
    """Sign and check cookie values."""

    key: str

    def _serializer(self, salt: str) -> URLSafeSerializer:
        return URLSafeSerializer(self.key, salt=salt)

    def sign(self, value: str, salt: str) -> str:
        return str(self._serializer(salt).dumps(value))

    def unsign(self, value: str | None, salt: str) -> str | None:
        if not value:
            return None
        try:
            out = self._serializer(salt).loads(value)
        except BadSignature:
            return None
        return out if isinstance(out, str) else None


@dataclass
class Auth:
    engine: Engine
    settings: Settings

    def locked(self, session: Session, username: str, now: datetime) -> bool:
        since = now - timedelta(minutes=self.settings.login_lockout_minutes)
        failures = session.exec(
            select(func.count()).select_from(LoginAttempt).where(
                LoginAttempt.username == username, col(LoginAttempt.at) >= since,
                col(LoginAttempt.ok).is_(False))).one()
        return failures >= self.settings.login_max_failures

    def sign_in(self, username: str, password: str, now: datetime) -> tuple[str, WebSession]:
        """A new session (never an old one: no session fixation), or BadValue."""
        username = username.strip()[:80]
        with Session(self.engine) as s:
            if self.locked(s, username, now):
                raise BadValue(
                    f"too many failed attempts for this account; wait"
                    f" {self.settings.login_lockout_minutes} minutes or ask an administrator")
            person = s.exec(select(Person).where(Person.username == username)).first()
            ok = False
            try:
                ok = _hasher.verify(
                    person.password_hash if person and person.password_hash else _DUMMY_HASH,
                    password) and person is not None and person.active \
                    and person.password_hash is not None
            except (VerificationError, InvalidHashError):
                ok = False
            s.add(LoginAttempt(username=username, at=now, ok=ok))
            if not ok or person is None or person.id is None:
                s.commit()
                raise BadValue("the username or password is not right; check both and try again")
            s.commit()
            return self.start_session(person.id, now)

    def start_session(self, person_id: int, now: datetime) -> tuple[str, WebSession]:
        """A brand-new session for someone whose identity has been proved."""
        token = secrets.token_urlsafe(32)
        web = WebSession(id=_digest(token), person_id=person_id,
                         csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now)
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(web)
            s.commit()
        return token, web

    def person_for_identity(self, email: str | None, username: str | None) -> Person | None:
        """The active person a single sign-on identity belongs to (by e-mail, then username)."""
        with Session(self.engine) as s:
            for column, value in ((Person.email, email), (Person.username, username)):
                if not value:
                    continue
                person = s.exec(select(Person).where(
                    func.lower(column) == value.strip().lower())).first()
                if person is not None and person.active:
                    return person
        return None

    def session_for(self, token: str | None, now: datetime) -> tuple[WebSession, Person] | None:
        """The live session for a cookie's token, touched; None when absent, revoked, idle
        too long, too old, or its person is no longer active."""
        if not token:
            return None
        with Session(self.engine, expire_on_commit=False) as s:
            web = s.get(WebSession, _digest(token))
            if web is None or web.revoked_at is not None:
                return None
            idle = timedelta(minutes=self.settings.session_idle_minutes)
            too_old = timedelta(hours=self.settings.session_max_hours)
            if now - web.last_seen_at > idle or now - web.created_at > too_old:
                web.revoked_at = now
                s.add(web)
                s.commit()
                return None
            person = s.get(Person, web.person_id)
            if person is None or not person.active:
                return None
            if now - web.last_seen_at > timedelta(seconds=60):
                web.last_seen_at = now
                s.add(web)
                s.commit()
            return web, person

    def sign_out(self, token: str | None, now: datetime) -> None:
        if not token:
            return
        with Session(self.engine) as s:
            s.execute(update(WebSession).where(col(WebSession.id) == _digest(token))
                      .values(revoked_at=now))
            s.commit()

    # -- API tokens ---------------------------------------------------------------------------
    def new_api_token(self, username: str, label: str, now: datetime) -> str:
        token = "drp_" + secrets.token_urlsafe(32)
        with Session(self.engine) as s:
            person = s.exec(select(Person).where(Person.username == username)).first()
            if person is None or person.id is None:
                raise BadValue(f"there is no person {username!r}; check the username")
            s.add(ApiToken(token_hash=_digest(token), person_id=person.id, label=label,
                           created_at=now))
            s.commit()
        return token

    def api_person(self, token: str) -> Person | None:
        with Session(self.engine) as s:
            row = s.exec(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
            if row is None or row.revoked_at is not None:
                return None
            person = s.get(Person, row.person_id)
            return person if person is not None and person.active else None


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
