"""Keys and passwords, for every shell: the secret key that signs cookies and model files,
and the argon2 hashing of people's passwords. Nothing here knows about the web app."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher

from notifications.transports import private_folder

from .errors import BadValue
from .settings import Settings

PASSWORDS = PasswordHasher()  # argon2id with the library's current parameters


def secret_key(settings: Settings) -> str:
    """The signing key: the setting, or one generated once for the embedded default."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(str(settings.mail_dir)).parent / "secret_key"
    if not path.exists():
        private_folder(path.parent)
        # Written whole to a file of this process's own (0600 from the start), then linked
        # into place: two processes starting together agree on the first one linked, and
        # neither can read the key half-written.
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise BadValue("a password needs at least 12 characters")
    return PASSWORDS.hash(password)
