"""Sign-in: argon2 password hashes, server-side sessions in signed HttpOnly SameSite cookies,
CSRF tokens, sign-in throttling by username and client address, idle timeout, and API tokens
that expire. Sessions and tokens hold the person's credential epoch (drp.models.Person): a new
password or leaving the organisation ends them all, for good.

Throttling (OWASP ASVS 5.0 V6.3.1, V6.1.1): every attempt is recorded, as a strike, before
anything is checked, and then the strikes are counted, so parallel guesses cannot pass a limit
(of k attempts in flight, the j-th to commit sees at least j strikes). A success clears the
strikes of its username and address; an attempt refused unchecked is no strike. Limits, each
over a sliding period (L = DRP_LOGIN_LOCKOUT_MINUTES, N = DRP_LOGIN_MAX_FAILURES):

- one username from one address: N in L, 2N in 4L, 4N in a day: progressively longer waits,
  and only that pair waits;
- one address, any usernames (password spraying): DRP_LOGIN_CLIENT_MAX_FAILURES in L, four
  times as many in a day;
- one username from addresses it has not signed in from in the last 90 days (a distributed
  attack): DRP_LOGIN_ACCOUNT_MAX_FAILURES a day. The person's own addresses are not held by
  it, so nobody elsewhere can lock them out.

`drp user unlock USERNAME` (or the administration page) clears a username's strikes; a new
password set by `drp user password` does not, one set through a reset link does
(drp.web.resets: the person has shown they hold the e-mail address)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import secrets
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from anyio import CapacityLimiter
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..audit import Origin, record
from ..errors import BadValue, NotFound
from ..keys import PASSWORDS as _hasher
from ..keys import hash_password
from ..models import ApiToken, LoginAttempt, Person, PersonRole, WebSession
from ..orgtoken import BOTH as TOKENS
from ..settings import Settings
from .signing import Signed as Signed
from .signing import same as same

SESSION_COOKIE = "drp_session"
LOGIN_COOKIE = "drp_login"
# Verifying against this keeps the time the same whether or not the username exists.
_DUMMY_HASH = _hasher.hash("drp-dummy-password")
# A session with its person and their roles (a row each role), and the organisation's and the
# data's tokens (drp.web.pagecache answers kept pages under them); a token with its person.
_LIVE = (sa_select(WebSession, Person, col(PersonRole.role), *TOKENS)
         .outerjoin(Person, col(Person.id) == WebSession.person_id)
         .outerjoin(PersonRole, col(PersonRole.person_id) == Person.id)
         .where(col(WebSession.id) == bindparam("id")))
_TOKEN = (sa_select(ApiToken, Person).outerjoin(Person, col(Person.id) == ApiToken.person_id)
          .where(col(ApiToken.token_hash) == bindparam("hash")))
KNOWN_ADDRESS_DAYS = 90  # an address the person signed in from this recently is theirs
TOKEN_DAYS, TOKEN_MAX_DAYS = 90, 366  # an API token's lifetime: default, most
# Password checks (argon2: CPU and 64 MiB each) run on threads of their own, at most half the
# cores at once and at a lower CPU priority: a crowd of sign-ins waits its turn without taking
# the threads, cores and database connections every other request needs (in the web app's
# shared thread pool, 40 of them would hold all 40 threads and stall even /healthz).
CHECKS_AT_ONCE = max(1, (os.cpu_count() or 2) // 2)
CHECK_NICENESS = 5
SIGN_INS_AT_ONCE = 4  # sign-ins at the database at once (of the pool's 15 connections)


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not on every platform
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)


_checks = ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE, thread_name_prefix="drp-password",
                             initializer=_lower_priority)
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = \
    weakref.WeakKeyDictionary()


def sign_in_limiter() -> CapacityLimiter:
    """The running event loop's limiter for sign-ins' database steps (anyio.to_thread)."""
    loop = asyncio.get_running_loop()
    if loop not in _limiters:
        _limiters[loop] = CapacityLimiter(SIGN_INS_AT_ONCE)
    return _limiters[loop]


async def check_password(attempt: Attempt, password: str) -> bool:
    """Auth.check on the password threads, awaited without holding the event loop."""
    return await asyncio.wrap_future(_checks.submit(Auth.check, attempt, password))


def _audit(session: Session, origin: Origin | None, action: str, detail: str,
           now: datetime, actor: str = "system") -> None:
    """One audit row for a credential issued, revoked or cleared (never the secret); the
    command line's origin names the operating-system user who did it, a page's the person
    signed in (`actor`)."""
    via = f" ({origin.via})" if origin is not None and origin.via else ""
    record(session, origin, at=now, actor=actor, action=action, detail=detail + via)


def _person(session: Session, username: str) -> Person:
    person = session.exec(select(Person).where(Person.username == username)).first()
    if person is None or person.id is None:
        raise BadValue(f"there is no person {username!r}; check the username")
    return person


def set_password(engine: Engine, username: str, password: str,
                 now: datetime | None = None, origin: Origin | None = None) -> int:
    """Set the password; every session and API token of the person ends (their epoch moves
    on). It does not clear a lock-out (`drp user unlock` does). The number of tokens revoked."""
    hashed = hash_password(password)
    now = now or datetime.now(UTC)
    with Session(engine) as s:
        person = _person(s, username)
        count = new_password(s, person, hashed, now)
        _audit(s, origin, "password_set",
               f"password set for {username}; sessions ended, {count} API token(s) revoked",
               now)
        s.commit()
    return count


def new_password(s: Session, person: Person, hashed: str, now: datetime) -> int:
    """In the caller's transaction: the person's new password hash; their credential epoch
    moves on and every session and API token of theirs is revoked (how many tokens)."""
    person.password_hash = hashed
    person.credential_epoch = (person.credential_epoch or 0) + 1
    s.add(person)
    s.execute(update(WebSession).where(col(WebSession.person_id) == person.id,
                                       col(WebSession.revoked_at).is_(None))
              .values(revoked_at=now))
    revoked = s.execute(update(ApiToken).where(col(ApiToken.person_id) == person.id,
                                               col(ApiToken.revoked_at).is_(None))
                        .values(revoked_at=now))
    return int(getattr(revoked, "rowcount", 0) or 0)


async def hash_off_loop(password: str) -> str:
    """keys.hash_password (its rules, argon2) on the password threads, as sign-in's check."""
    return await asyncio.wrap_future(_checks.submit(hash_password, password))


def clear_strikes(s: Session, username: str) -> int:
    """In the caller's transaction: a username's failed sign-ins, from every address, no
    longer count (how many there were)."""
    done = s.execute(update(LoginAttempt).where(
        col(LoginAttempt.username) == username, col(LoginAttempt.strike).is_(True))
        .values(strike=False))
    return int(getattr(done, "rowcount", 0) or 0)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Limit:
    """At most `most` strikes within `period` for attempts sharing a scope."""

    scope: str  # "pair" (username and address), "client" (address), "account" (username)
    most: int
    period: timedelta


def limits(settings: Settings) -> list[Limit]:
    n, period = settings.login_max_failures, timedelta(minutes=settings.login_lockout_minutes)
    day = max(timedelta(days=1), 4 * period)
    c = settings.login_client_max_failures
    return [Limit("pair", n, period), Limit("pair", 2 * n, 4 * period),
            Limit("pair", 4 * n, day), Limit("client", c, period),
            Limit("client", 4 * c, day),
            Limit("account", settings.login_account_max_failures, timedelta(days=1))]


def _counting(limit: Limit, username: str, client: str, now: datetime) -> list[Any]:
    """The failed sign-ins (strikes) a limit counts now for a username at an address."""
    where = [col(LoginAttempt.strike).is_(True), col(LoginAttempt.at) > now - limit.period]
    if limit.scope in ("pair", "account"):
        where.append(col(LoginAttempt.username) == username)
    if limit.scope in ("pair", "client"):
        where.append(col(LoginAttempt.client) == client)
    return where


@dataclass(frozen=True)
class Attempt:
    """A recorded sign-in attempt allowed to be checked."""

    id: int
    username: str
    client: str
    password_hash: str | None  # None: no such person, or not active, or no password


@dataclass
class Auth:
    engine: Engine
    settings: Settings

    # -- sign-in ------------------------------------------------------------------------------
    def sign_in(self, username: str, password: str, now: datetime,
                client: str = "") -> tuple[str, WebSession]:
        """A new session (never an old one: no session fixation), or BadValue. In one thread
        (the command line, tests); the web app runs the three steps apart."""
        attempt = self.begin(username, client, now)
        return self.finish(attempt, self.check(attempt, password), now)

    def begin(self, username: str, client: str, now: datetime) -> Attempt:
        """Record the attempt (a strike), then count: BadValue when a limit is passed."""
        username, client = username.strip()[:80], (client or "")[:64]
        with Session(self.engine) as s:
            row = LoginAttempt(username=username, client=client, at=now, ok=False,
                               strike=True)
            s.add(row)
            s.commit()
            assert row.id is not None
            attempt_id = row.id
        with Session(self.engine) as s:
            refusal = self._refusal(s, username, client, now)
            if refusal is not None:  # refused unchecked: no strike, so waiting is enough
                s.execute(update(LoginAttempt).where(col(LoginAttempt.id) == attempt_id)
                          .values(strike=False))
                s.commit()
                raise BadValue(refusal)
            person = s.exec(select(Person).where(Person.username == username)).first()
            usable = person is not None and person.active and person.password_hash
            return Attempt(attempt_id, username, client,
                           person.password_hash if usable and person else None)

    def _refusal(self, s: Session, username: str, client: str, now: datetime) -> str | None:
        known = s.exec(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username, LoginAttempt.client == client,
            col(LoginAttempt.ok).is_(True),
            col(LoginAttempt.at) >= now - timedelta(days=KNOWN_ADDRESS_DAYS))).one() > 0
        for limit in limits(self.settings):
            # A person signing in from an address they have used lately is held only by the
            # limits of their own username there: an attacker spraying other usernames from
            # the same address (a council's NAT, a proxy) cannot lock them out.
            if limit.scope in ("account", "client") and known:
                continue
            where = _counting(limit, username, client, now)
            strikes = s.exec(select(func.count()).select_from(LoginAttempt)
                             .where(*where)).one()
            if strikes <= limit.most:  # this attempt's own strike included
                continue
            # Free again when all but most - 1 of the others have left the period.
            ats = list(s.exec(select(LoginAttempt.at).where(*where)
                              .order_by(col(LoginAttempt.at)).limit(strikes - limit.most)))
            wait = max(ats[-1] + limit.period - now, timedelta(minutes=1)) if ats \
                else limit.period
            minutes = math.ceil(wait.total_seconds() / 60)
            if limit.scope == "client":
                return (f"too many failed sign-ins from this address; wait {minutes} minutes"
                        " or ask an administrator")
            return (f"too many failed attempts for this account; wait {minutes} minutes or"
                    " ask an administrator")
        return None

    def locked(self, s: Session, username: str, now: datetime) -> bool:
        """Whether the username's next sign-in would be refused by a limit of its own (the
        account's, or the username's at an address it has failed from), whatever the
        password: `_refusal`'s counts, without an attempt of its own (hence `>=`)."""
        clients = set(s.exec(select(LoginAttempt.client).where(
            col(LoginAttempt.username) == username, col(LoginAttempt.strike).is_(True))))
        for limit in limits(self.settings):
            for client in (clients if limit.scope == "pair" else
                           [""] if limit.scope == "account" else []):
                strikes = s.exec(select(func.count()).select_from(LoginAttempt).where(
                    *_counting(limit, username, client, now))).one()
                if strikes >= limit.most:
                    return True
        return False

    @staticmethod
    def check(attempt: Attempt, password: str) -> bool:
        """The password check alone (argon2, about 0.4 s of CPU; no database)."""
        try:
            return bool(_hasher.verify(attempt.password_hash or _DUMMY_HASH, password)) \
                and attempt.password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def finish(self, attempt: Attempt, ok: bool, now: datetime) -> tuple[str, WebSession]:
        """A failure stays a strike; a success clears the strikes of its username and
        address and starts a session."""
        if not ok:
            raise BadValue("the username or password is not right; check both and try again")
        with Session(self.engine) as s:
            s.execute(update(LoginAttempt).where(col(LoginAttempt.id) == attempt.id)
                      .values(ok=True, strike=False))
            s.execute(update(LoginAttempt).where(
                col(LoginAttempt.username) == attempt.username,
                col(LoginAttempt.client) == attempt.client,
                col(LoginAttempt.strike).is_(True)).values(strike=False))
            person_id = s.exec(select(Person.id).where(
                Person.username == attempt.username)).one()
            s.commit()
        assert person_id is not None
        return self.start_session(person_id, now)

    def unlock(self, username: str, now: datetime, origin: Origin | None = None,
               by: str = "system") -> int:
        """Clear a username's strikes (from every address): how many there were. `by`: the
        administrator, when a page asks (the command line's origin names its user)."""
        with Session(self.engine) as s:
            _person(s, username)
            cleared = clear_strikes(s, username)
            _audit(s, origin, "unlocked",
                   f"sign-in unlocked for {username}; {cleared} failed attempt(s) cleared", now,
                   by)
            s.commit()
        return cleared

    def unlock_client(self, client: str, now: datetime, origin: Origin | None = None,
                      by: str = "system") -> int:
        """Clear the strikes from one address (every username tried from it): how many."""
        client = client.strip()[:64]
        if not client:
            raise BadValue("give the address whose failed sign-ins should no longer count")
        with Session(self.engine) as s:
            done = s.execute(update(LoginAttempt).where(
                col(LoginAttempt.client) == client, col(LoginAttempt.strike).is_(True))
                .values(strike=False))
            cleared = int(getattr(done, "rowcount", 0) or 0)
            _audit(s, origin, "unlocked",
                   f"sign-in unlocked for address {client}; {cleared} failed attempt(s)"
                   " cleared", now, by)
            s.commit()
        return cleared

    # -- sessions -----------------------------------------------------------------------------
    def start_session(self, person_id: int, now: datetime) -> tuple[str, WebSession]:
        """A brand-new session for someone whose identity has been proved."""
        token = secrets.token_urlsafe(32)
        with Session(self.engine, expire_on_commit=False) as s:
            person = s.get(Person, person_id)
            if person is None:
                raise BadValue("there is no such person")
            web = WebSession(id=_digest(token), person_id=person_id,
                             csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                             epoch=person.credential_epoch)
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

    def live_session(self, token: str | None, now: datetime
                     ) -> tuple[WebSession, Person, frozenset[str], tuple[int, int]] | None:
        """The live session for a cookie's token, touched, with its person, their roles and
        the organisation's and data's tokens read with them (`_LIVE`); None when absent,
        revoked, idle too long, too old, its person is no longer active, or their credentials
        have moved on (a new password, or removed from the organisation)."""
        if not token:
            return None
        with Session(self.engine, expire_on_commit=False) as s:
            rows = s.execute(_LIVE, {"id": _digest(token)}).all()  # a row for each role
            web, person = (rows[0][0], rows[0][1]) if rows else (None, None)
            if web is None or web.revoked_at is not None:
                return None
            idle = timedelta(minutes=self.settings.session_idle_minutes)
            too_old = timedelta(hours=self.settings.session_max_hours)
            if now - web.last_seen_at > idle or now - web.created_at > too_old \
                    or person is None or person.credential_epoch != web.epoch:
                web.revoked_at = now
                s.add(web)
                s.commit()
                return None
            if not person.active:
                return None
            if now - web.last_seen_at > timedelta(seconds=60):
                web.last_seen_at = now
                s.add(web)
                s.commit()
            return (web, person, frozenset(r[2] for r in rows if r[2] is not None),
                    (int(rows[0][3]), int(rows[0][4])))

    def sign_out(self, token: str | None, now: datetime) -> None:
        if not token:
            return
        with Session(self.engine) as s:
            s.execute(update(WebSession).where(col(WebSession.id) == _digest(token))
                      .values(revoked_at=now))
            s.commit()

    # -- API tokens ---------------------------------------------------------------------------
    def new_api_token(self, username: str, label: str, now: datetime,
                      days: int = TOKEN_DAYS, origin: Origin | None = None) -> str:
        """A new token (shown once; only its hash is kept), expiring after `days`."""
        if not 1 <= days <= TOKEN_MAX_DAYS:
            raise BadValue(f"a token lasts 1 to {TOKEN_MAX_DAYS} days, not {days}; give"
                           " --expires DAYS within that", field="expires")
        label = label.strip()[:100]
        token = "drp_" + secrets.token_urlsafe(32)
        with Session(self.engine) as s:
            person = _person(s, username)
            if not person.active:
                raise BadValue(f"{username} is not in the organisation now; no token issued")
            assert person.id is not None
            row = ApiToken(token_hash=_digest(token), person_id=person.id, label=label,
                           created_at=now, expires_at=now + timedelta(days=days),
                           epoch=person.credential_epoch)
            s.add(row)
            s.flush()
            _audit(s, origin, "token_issued",
                   f"API token {row.id} ({label!r}) for {username}, expires"
                   f" {row.expires_at:%Y-%m-%d %H:%M} UTC", now)
            s.commit()
        return token

    def api_person(self, token: str, now: datetime | None = None) -> Person | None:
        """The person a bearer token acts as; None when unknown, revoked, expired, issued
        before the person's credentials moved on, or the person is not active. Token
        lifetimes run on the real clock unless `now` is given."""
        now = now or datetime.now(UTC)
        with Session(self.engine, expire_on_commit=False) as s:
            found = s.execute(_TOKEN, {"hash": _digest(token)}).first()
            row: ApiToken | None = found[0] if found else None
            person: Person | None = found[1] if found else None
            if row is None or row.revoked_at is not None or row.expires_at <= now \
                    or person is None or not person.active or person.credential_epoch != row.epoch:
                return None
            if row.last_used_at is None or now - row.last_used_at > timedelta(seconds=60):
                row.last_used_at = now
                s.add(row)
                s.commit()
            return person

    def tokens(self, username: str | None = None) -> list[tuple[ApiToken, str, bool]]:
        """API tokens (everyone's, or one person's), newest first, each with its person's
        username and whether it still works (not revoked, not expired, same epoch)."""
        now = datetime.now(UTC)
        with Session(self.engine) as s:
            query = select(ApiToken, Person).join(Person, col(Person.id) == ApiToken.person_id)
            if username is not None:
                query = query.where(Person.id == _person(s, username).id)
            rows = s.exec(query.order_by(col(ApiToken.id).desc())).all()
            return [(t, p.username, t.revoked_at is None and t.expires_at > now
                     and t.epoch == p.credential_epoch and p.active) for t, p in rows]

    def revoke_token(self, token_id: int, now: datetime, origin: Origin | None = None) -> str:
        """Revoke one token by its id: the username it acted as."""
        with Session(self.engine) as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"there is no API token {token_id}; `drp user tokens` lists"
                               " them")
            person = s.get(Person, row.person_id)
            username = person.username if person else "?"
            if row.revoked_at is None:
                row.revoked_at = now
                s.add(row)
                _audit(s, origin, "token_revoked",
                       f"API token {token_id} ({row.label!r}) of {username} revoked", now)
                s.commit()
            return username

