"""Who may use the UI, and proof that a state-changing request comes from its own pages.

- **API key.** With ``SAGA_API_KEY`` set, the UI asks for a key once
  (``/ui/login``, a password field) and keeps it in an ``HttpOnly``,
  ``SameSite=Strict`` cookie; every page and action checks it exactly as the
  API checks its ``Authorization`` header (:func:`~orchestrator.api.deps.authenticate`).
- **CSRF.** Every state-changing request is a ``POST`` that must carry the
  page's token (form field ``csrf`` or header ``X-CSRF-Token``) equal to the
  ``saga_csrf`` cookie (double submit). The cookie is ``SameSite=Strict``: a
  forged cross-site request arrives without it and is refused with 403.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request, Response

from orchestrator.api.deps import authenticate
from orchestrator.runtime import Runtime

CSRF_COOKIE = "saga_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
KEY_COOKIE = "saga_key"


class LoginRequired(Exception):
    """The UI was used without a valid key (answered by ``pages.login_required``)."""


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (a new one when it has none; set it with :func:`keep_csrf`)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def keep_csrf(request: Request, response: Response, token: str) -> None:
    """Set the CSRF cookie unless the browser already holds ``token``."""
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request)
        )


def check_csrf(request: Request, presented: str | None) -> None:
    """403 unless ``presented`` is the token of the browser's own cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not presented or not hmac.compare_digest(cookie, presented):
        raise HTTPException(403, "this request did not come from the UI's own page (CSRF check)")


def ui_caller(request: Request) -> str:
    """Who uses the UI (see :func:`authenticate`); :class:`LoginRequired` without a valid key."""
    rt: Runtime = request.app.state.runtime
    if not rt.settings.api_keys():
        return "anonymous"
    try:
        return authenticate(rt.settings, request.cookies.get(KEY_COOKIE))
    except HTTPException:
        raise LoginRequired from None


def keep_key(request: Request, response: Response, key: str) -> None:
    """Remember an accepted API key in the browser (never readable by scripts)."""
    response.set_cookie(
        KEY_COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui",
    )


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"
