"""The administration pages: the protocol in force, and loading the organisation file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ...errors import DrpError
from ...ladder.machine import diagram
from ...runtime import Runtime
from ..deps import (
    Administrator,
    Page,
    PageRenderer,
    PostedForm,
    RuntimeDep,
    SignedInUser,
    Work,
)

router = APIRouter(include_in_schema=False)


def _admin_page(rt: Runtime, user: SignedInUser, page: PageRenderer, status: int = 200,
                **values: Any) -> Response:
    return page("admin.html", user, status=status, protocol=rt.protocol,
                protocol_file=str(rt.settings.protocol), **values)


@router.get("/admin", response_class=HTMLResponse)
def admin(rt: RuntimeDep, user: Administrator, page: Page) -> Response:
    return _admin_page(rt, user, page)


@router.get("/admin/protocol.svg")
def protocol_svg(rt: RuntimeDep, _user: Administrator) -> Response:
    with tempfile.TemporaryDirectory() as tmp:
        out = diagram(rt.protocol, Path(tmp) / "ladder.svg")
        return Response(out.read_bytes(), media_type="image/svg+xml")


@router.post("/admin/org", response_class=HTMLResponse)
async def load_organisation(rt: RuntimeDep, user: Administrator, form: PostedForm,
                            page: Page, work: Work) -> Response:
    upload = form.get("file")
    data = await upload.read() if upload is not None and not isinstance(upload, str) else b""
    if not data:
        return _admin_page(rt, user, page, status=400,
                           error="choose the organisation file (YAML) to load")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "organisation.yaml"
        path.write_bytes(data[:5_000_000])
        try:
            # Open alerts follow their children in the same transaction (transfers).
            with work() as service:
                loaded = service.load_organisation(path, user.username)
        except DrpError as exc:
            return _admin_page(rt, user, page, status=400,
                               error=exc.message.replace(str(path), "the file"))
    return _admin_page(rt, user, page, done=" ".join(loaded.lines()))
