"""Keys and passwords, for every shell: the secret key that signs cookies and model files,
and the argon2 hashing of people's passwords. Nothing here knows about the web app."""

from __future__ import annotations

import secrets
from pathlib import Path

from argon2 import PasswordHasher

from .errors import BadValue
from .settings import Settings

PASSWORDS = PasswordHasher()  # argon2id with the library's current parameters


def secret_key(settings: Settings) -> str:
    """The signing key: the setting, or one generated once for the embedded default."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(str(settings.mail_dir)).parent / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise BadValue("a password needs at least 12 characters")
    return PASSWORDS.hash(password)
