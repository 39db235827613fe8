"""Signed cookie values and a constant-time comparison of secrets (split from auth.py, which
re-exports both)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer


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


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
