"""drp's own static files (GOV.UK Frontend's CSS and JS, drp's CSS and scripts under
drp/web/static) and how long a browser may keep them.

A page names each file by `static_url`: its path with a fingerprint of its content
(`/static/app.css?v=3f2a...`). A browser keeps that for a year without asking again, so a
person moving from page to page fetches and parses the 180 KB of GOV.UK Frontend once, not on
every page; a release that changes a file changes its fingerprint, so nothing stale is used.
Anything asked for without the current fingerprint (what the CSS and scripts name themselves,
an old page's link) is asked about each time (`no-cache`: answered 304, no body, while it is
unchanged). The pages themselves stay `no-store` (app.security_headers): they hold children's
records."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).parent / "static"
PREFIX = "/static/"
KEEP = "public, max-age=31536000, immutable"  # a fingerprinted URL: its content never changes
ASK = "no-cache"  # kept, but asked about (ETag, 304) before each use


@lru_cache(maxsize=64)
def fingerprint(path: str) -> str | None:
    """The first 16 hex digits of the SHA-256 of FOLDER/path, read once per process; None
    where no such file is under FOLDER."""
    file = (FOLDER / path).resolve()
    if not file.is_relative_to(FOLDER.resolve()) or not file.is_file():
        return None
    return hashlib.sha256(file.read_bytes()).hexdigest()[:16]


def static_url(path: str) -> str:
    """The URL a page names a static file by (templates: `{{ static_url("app.css") }}`);
    a template naming a file that is not there fails when it is first rendered."""
    found = fingerprint(path)
    if found is None:
        raise LookupError(f"no static file {path} under {FOLDER}")
    return f"{PREFIX}{path}?v={found}"


def cache_control(url_path: str, version: str | None) -> str | None:
    """The Cache-Control of a static file's answer: KEEP where the URL carries the file's
    current fingerprint, ASK otherwise; None for anything not under /static/."""
    if not url_path.startswith(PREFIX):
        return None
    if version and version == fingerprint(url_path.removeprefix(PREFIX)):
        return KEEP
    return ASK
