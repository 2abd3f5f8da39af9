"""The UI's pages and actions: ``/ui/sagas``, ``/ui/sagas/{id}``, login, and the one script.

Everything shown is read through the same readers and operations as the REST
API, and every action goes through the same operation with the same rules:
the UI can do nothing the API would refuse. User data (inputs, results,
errors) only ever reaches a page through Jinja2's autoescaping.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from orchestrator.api import ops as ops_routes
from orchestrator.api.deps import authenticate, saga_id
from orchestrator.api.ui import security
from orchestrator.api.ui.diagram import definition_svg
from orchestrator.api.ui.security import check_csrf, csrf_token, keep_csrf
from orchestrator.api.ui.timeline import steps_of, timeline_svg
from orchestrator.api.views import definition_view, saga_view
from orchestrator.definitions import MAX_VERSION, NAME_PATTERN
from orchestrator.errors import OrchestratorError
from orchestrator.machine import (
    CancelRequested,
    CompensateRequested,
    Event,
    RetryRequested,
    SagaStatus,
)
from orchestrator.operations import Operations
from orchestrator.runtime import Runtime
from orchestrator.settings import redact_url

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 25
#: Counts by status are read at most this often per process (they are a group-by).
COUNTS_TTL_S = 5.0
AT_REST = {"completed", "compensated", "failed"}
_STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}

templates = Environment(
    loader=PackageLoader("orchestrator.api.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)


def _summary(event: dict[str, Any]) -> str:
    """One line saying what an event of the history was (its detail is one click away)."""
    detail = event.get("detail") or {}
    if not isinstance(detail, dict):
        return "detail"
    if event.get("kind") == "transition" and "to" in detail:
        moved = f"{detail.get('from', '?')} → {detail['to']}"
        error = detail.get("error")
        return (
            f"{moved}: {error['message']}"
            if isinstance(error, dict) and "message" in error
            else moved
        )
    if isinstance(detail.get("error"), str):
        return str(detail["error"])
    if "action" in detail:
        return f"{detail['action']} by {detail.get('by', 'an operator')}"
    status = detail.get("status")
    took = detail.get("duration_ms")
    parts = [
        f"HTTP {status}" if status else "",
        f"{took:.0f} ms" if isinstance(took, int | float) else "",
    ]
    return " · ".join(p for p in parts if p) or "detail"


templates.globals["summary"] = _summary


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _ops(request: Request) -> Operations:
    ops: Operations = request.app.state.operations
    return ops


def _render(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    token = csrf_token(request)
    faults_on = _rt(request).settings.enable_faults
    html = templates.get_template(template).render(
        csrf=token, faults_on=faults_on, status_code=status_code, **context
    )
    response = HTMLResponse(html, status_code=status_code)
    keep_csrf(request, response, token)
    return response


async def login_required(request: Request, _: Exception) -> Response:
    """Without a valid key: a page sends the browser to the login page, a script gets 401."""
    if request.method != "GET" or request.url.path.endswith("/state"):
        return JSONResponse({"error": "login required"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/ui/login?" + urlencode({"next": target}), status_code=303)


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/sagas", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = "/ui/sagas") -> HTMLResponse:
    return _render(request, "login.html", next=_local(next), refused=False)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    check_csrf(request, form.get(security.CSRF_FIELD))
    target = _local(form.get("next", "/ui/sagas"))
    try:
        authenticate(_rt(request).settings, form.get("key", ""))
    except HTTPException:
        return _render(request, "login.html", status_code=401, next=target, refused=True)
    response = RedirectResponse(target, status_code=303)
    security.keep_key(request, response, form["key"])
    return response


def _local(target: str) -> str:
    # Only a path of the UI: a login link must not send the browser elsewhere.
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/sagas"


class _Counts:
    """Open sagas by status, read at most every :data:`COUNTS_TTL_S` (per process)."""

    def __init__(self) -> None:
        self.read_at = 0.0
        self.counts: dict[str, int] = {}

    async def get(self, rt: Runtime) -> tuple[dict[str, int], float]:
        if time.monotonic() - self.read_at > COUNTS_TTL_S:
            self.counts, _ = await rt.reader.gauges()
            self.read_at = time.monotonic()
        return self.counts, time.monotonic() - self.read_at


_counts = _Counts()


@router.get("/sagas")
async def sagas_page(
    request: Request,
    status_name: Annotated[str, Query(alias="status", max_length=32)] = "",
    definition: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    step: Annotated[str, Query(max_length=64)] = "",
    created_after: Annotated[str, Query(max_length=40)] = "",
    created_before: Annotated[str, Query(max_length=40)] = "",
    id: Annotated[str, Query(max_length=36)] = "",
) -> Response:
    security.ui_caller(request)
    # The filter form sends every field, empty ones included: empty means "any".
    known = {s.value: s for s in SagaStatus}
    if status_name and status_name not in known:
        message = f"status: {status_name!r} is not one of {', '.join(known)}"
        return _render(request, "error.html", status_code=422, message=message)
    if definition and not re.fullmatch(NAME_PATTERN, definition):
        message = f"definition: {definition!r} is not a definition name"
        return _render(request, "error.html", status_code=422, message=message)
    if step and not re.fullmatch(NAME_PATTERN, step):
        message = f"step: {step!r} is not a step name"
        return _render(request, "error.html", status_code=422, message=message)
    moments: dict[str, datetime | None] = {}
    for field, value in (("created_after", created_after), ("created_before", created_before)):
        try:
            moments[field] = datetime.fromisoformat(value) if value else None
        except ValueError:
            message = f"{field}: {value!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)"
            return _render(request, "error.html", status_code=422, message=message)
    status = known.get(status_name)
    rt, ops = _rt(request), _ops(request)
    try:
        page = await rt.reader.page(
            status=status.value if status else None,
            definition=definition or None,
            limit=PAGE_SIZE,
            cursor=cursor,
            step=step or None,
            created_after=moments["created_after"],
            created_before=moments["created_before"],
            id_prefix=id or None,
        )
    except OrchestratorError as refused:
        return _render(request, "error.html", status_code=refused.status, message=str(refused))
    rows = []
    for saga in page.items:
        stored = await ops.definition(saga.definition_name, saga.definition_version)
        rows.append(saga_view(saga, stored.definition))
    counts, age_s = await _counts.get(rt)
    # What a bulk retry of this filter would re-arm, shown before anyone confirms it.
    retriable = (
        len(await rt.reader.ids_to_retry(status="failed", definition=definition or None))
        if status is SagaStatus.FAILED
        else 0
    )
    filters = {
        "status": status.value if status else "",
        "definition": definition,
        "step": step,
        "created_after": created_after,
        "created_before": created_before,
        "id": id,
    }
    kept = {k: v for k, v in filters.items() if v}
    next_url = (
        "/ui/sagas?" + urlencode({**kept, "cursor": page.next_cursor}) if page.next_cursor else None
    )
    return _render(
        request,
        "sagas.html",
        rows=rows,
        filters=filters,
        statuses=[s.value for s in SagaStatus],
        counts=counts,
        counts_age_s=age_s,
        next_url=next_url,
        retriable=retriable,
    )


@router.get("/sagas/{id}")
async def saga_page(request: Request, id: str, failures: bool = False) -> Response:
    security.ui_caller(request)
    rt, ops = _rt(request), _ops(request)
    try:
        saga = await ops.saga(saga_id(id))
    except OrchestratorError as missing:
        return _render(request, "error.html", status_code=missing.status, message=str(missing))
    stored = await ops.definition(saga.definition_name, saga.definition_version)
    view = saga_view(saga, stored.definition)
    events = await rt.reader.history(saga.id)
    for event in events:
        detail = event.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("url"), str):
            detail["url"] = redact_url(detail["url"])
    plan = stored.definition.plan()
    shown = [e for e in events if _is_failure(e)] if failures else events
    return _render(
        request,
        "saga.html",
        saga=view,
        events=shown,
        event_count=len(events),
        failures=failures,
        timeline=Markup(timeline_svg(events, steps_of(plan))),
        at_rest=view["status"] in AT_REST,
    )


def _is_failure(event: dict[str, Any]) -> bool:
    return event.get("outcome") in ("rejected", "transient") or (
        event.get("kind") == "transition" and (event.get("detail") or {}).get("to") == "failed"
    )


@router.get("/sagas/{id}/state")
async def saga_state(request: Request, id: str) -> Response:
    """The saga's status and steps as JSON, for the page's in-place refresh."""
    security.ui_caller(request)
    ops = _ops(request)
    saga = await ops.saga(saga_id(id))
    stored = await ops.definition(saga.definition_name, saga.definition_version)
    view = saga_view(saga, stored.definition)
    return JSONResponse(
        {
            "status": view["status"],
            "version": view["version"],
            "error": view["error"],
            "steps": [
                {k: s[k] for k in ("name", "status", "attempts", "compensation_attempts")}
                for s in view["steps"]
            ],
        }
    )


@router.post("/sagas/retry")
async def retry_matching(
    request: Request, x_csrf_token: Annotated[str | None, Header(max_length=128)] = None
) -> Response:
    """Re-arm every failed saga matching the list's filter, as ``POST /v1/sagas/retry`` does."""
    form = await _form(request)
    check_csrf(request, x_csrf_token or form.get(security.CSRF_FIELD))
    who = security.ui_caller(request)
    definition = form.get("definition") or None
    if definition is not None and not re.fullmatch(NAME_PATTERN, definition):
        return JSONResponse({"ok": False, "message": "not a definition name"}, status_code=422)
    count = await _ops(request).retry_matching("failed", definition, None, who)
    return JSONResponse({"ok": True, "message": f"{count} failed sagas re-armed", "retried": count})


_ACTIONS = ("cancel", "retry", "compensate")


@router.post("/sagas/{id}/{action}")
async def saga_action(
    request: Request,
    id: str,
    action: str,
    x_csrf_token: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """Cancel, retry or compensate, as the API would; a refusal answers the API's message."""
    check_csrf(request, x_csrf_token or (await _form(request)).get(security.CSRF_FIELD))
    who = security.ui_caller(request)
    if action not in _ACTIONS:
        return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
    ops = _ops(request)
    event: Event = (
        CancelRequested(f"cancelled by {who}")
        if action == "cancel"
        else RetryRequested()
        if action == "retry"
        else CompensateRequested()
    )
    try:
        saga = await ops.request(saga_id(id), event, who)
    except OrchestratorError as refused:
        return JSONResponse({"ok": False, "message": str(refused)}, status_code=refused.status)
    stored = await ops.definition(saga.definition_name, saga.definition_version)
    view = saga_view(saga, stored.definition)
    return JSONResponse({"ok": True, "message": f"{action}: accepted", "status": view["status"]})


async def _form(request: Request) -> dict[str, str]:
    """A form posted by a page (``application/x-www-form-urlencoded``), first value per name."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    fields = parse_qs((await request.body()).decode(errors="replace"), max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


@router.get("/definitions")
async def definitions_page(
    request: Request,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> Response:
    """Each definition's latest version (or the one asked for): its diagram beside its JSON."""
    security.ui_caller(request)
    rt, ops = _rt(request), _ops(request)
    latest = await rt.definitions.latest_versions()
    shown = []
    for each, newest, _created in latest:
        if name is not None and each != name:
            continue
        try:
            stored = await ops.definition(each, version if name is not None else None)
        except OrchestratorError as missing:
            return _render(request, "error.html", status_code=missing.status, message=str(missing))
        shown.append(
            {
                "view": definition_view(stored),
                "versions": list(range(newest, 0, -1)),
                "diagram": Markup(definition_svg(stored.definition)),  # escaped inside
            }
        )
    return _render(request, "definitions.html", definitions=shown, chosen=name)


@router.get("/participants")
async def participants_page(request: Request) -> Response:
    """Each participant's addresses and whether it answers (as ``GET /v1/participants``)."""
    security.ui_caller(request)
    listed = await ops_routes.participants(_rt(request))
    return _render(request, "participants.html", participants=listed["items"])


@router.get("/faults")
async def faults_page(request: Request) -> Response:
    """The injected-fault rules and how often each fired; only with faults enabled."""
    security.ui_caller(request)
    rt = _rt(request)
    if not rt.settings.enable_faults:
        return _render(request, "error.html", status_code=404, message="fault injection is off")
    rules = [r.as_json() for r in await rt.faults.all()]
    return _render(request, "faults.html", rules=rules)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The UI's own script and stylesheet (shipped in the package)."""
    if name not in _STATIC:
        return Response(status_code=404)
    body = resources.files("orchestrator.api.ui").joinpath("static", name).read_bytes()
    return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})
