"""Static files (drp/web/staticfiles.py): each page names GOV.UK Frontend's CSS and JS and
drp's own by an address carrying a fingerprint of the file, which a browser keeps for a year;
anything else under /static/ is asked about each time (a 304 while unchanged); the pages
themselves are never stored. (In Chromium, test_browser.py: the second page uses the CSS the
first fetched.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from drp.web import staticfiles

from .conftest import sign_in

FOLDER = Path(__file__).resolve().parent.parent / "drp" / "web" / "static"
KEEP = "public, max-age=31536000, immutable"


def test_each_page_names_its_static_files_by_content_and_they_may_be_kept(web: Any) -> None:
    c = sign_in(web[0], "iro.ada")
    page = c.get("/my-alerts")
    assert page.headers["cache-control"] == "no-store"  # a page holds children's records
    named = re.findall(r'(?:href|src)="(/static/[^"?]+)\?v=(\w+)"', page.text)
    assert {p for p, _ in named} >= {"/static/govuk/govuk-frontend.min.css", "/static/app.css",
                                    "/static/print.css", "/static/js-enabled.js",
                                    "/static/init.js"}
    assert len({v for _, v in named}) == len(named)  # different files, different addresses
    for path, version in named:
        r = c.get(f"{path}?v={version}")
        assert r.status_code == 200, path
        assert r.content == (FOLDER / path.removeprefix("/static/")).read_bytes(), path
        assert r.headers["cache-control"] == KEEP, path
        stale = c.get(f"{path}?v=0123456789abcdef")  # an old page's address: asked about
        assert stale.headers["cache-control"] == "no-cache", path


def test_what_is_named_without_its_fingerprint_is_asked_about_each_time(web: Any) -> None:
    c = sign_in(web[0], "iro.ada")
    # init.js imports GOV.UK Frontend's script by its plain path
    first = c.get("/static/govuk/govuk-frontend.min.js")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    again = c.get("/static/govuk/govuk-frontend.min.js",
                  headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == "no-cache"
    missing = c.get("/static/nothing.css")
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"


def test_a_changed_file_gets_a_new_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    (tmp_path / "app.css").write_text("p { color: black }")
    monkeypatch.setattr(staticfiles, "FOLDER", tmp_path)
    staticfiles.fingerprint.cache_clear()
    try:
        before = staticfiles.static_url("app.css")
        (tmp_path / "app.css").write_text("p { color: red }")
        staticfiles.fingerprint.cache_clear()  # a new release: a new process
        after = staticfiles.static_url("app.css")
        assert before.startswith("/static/app.css?v=") and after != before
        with pytest.raises(LookupError, match="no static file missing.css"):
            staticfiles.static_url("missing.css")
        assert staticfiles.fingerprint("../app.css") is None  # nothing outside the folder
    finally:
        staticfiles.fingerprint.cache_clear()

