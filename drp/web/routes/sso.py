"""Single sign-on: OpenID Connect with the council's identity provider (e.g. Entra ID), via
authlib. The person is matched by e-mail address (then username) to someone in the
organisation file; nobody else gets in. Only when DRP_OIDC_METADATA_URL is set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from ...errors import BadValue
from ..auth import SESSION_COOKIE
from ..deps import Context, WebContext


def router_for(context: WebContext) -> APIRouter:
    """The /login/sso and /auth/callback routes, with the app's identity provider."""
    # Imported here, not at the top, because only councils with single sign-on need it and
    # authlib warns about its httpx module on import (authlib 1.9): not a cycle to dodge.
    from authlib.integrations.starlette_client import OAuth, OAuthError

    settings = context.settings
    oauth = OAuth()
    oauth.register(
        "council", server_metadata_url=settings.oidc_metadata_url,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value()
        if settings.oidc_client_secret else None,
        client_kwargs={"scope": "openid email profile"},
    )
    router = APIRouter(include_in_schema=False)

    @router.get("/login/sso")
    async def sso(request: Request) -> Response:
        callback = settings.base_url.rstrip("/") + "/auth/callback"
        return await oauth.council.authorize_redirect(request, callback)  # type: ignore[no-any-return]

    @router.get("/auth/callback")
    async def sso_callback(request: Request, context: Context) -> Response:
        try:
            token = await oauth.council.authorize_access_token(request)
        except OAuthError:
            raise BadValue("single sign-on did not complete; try again") from None
        info = token.get("userinfo") or {}
        # The database steps run on the thread pool, not the event loop.
        person = await run_in_threadpool(context.auth.person_for_identity, info.get("email"),
                                         info.get("preferred_username"))
        if person is None or person.id is None:
            raise BadValue("your council account is not a drp user; ask the drp administrator"
                           " to add your e-mail address to the organisation file")
        session_token, _ = await run_in_threadpool(context.auth.start_session, person.id,
                                                   context.clock.now())
        response = RedirectResponse("/", 303)
        response.set_cookie(SESSION_COOKIE, context.signer.sign(session_token, "session"),
                            httponly=True, samesite="lax", secure=context.secure_cookies)
        return response

    return router
