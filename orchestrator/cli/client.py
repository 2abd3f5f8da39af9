"""Client commands: talk to a running orchestrator's REST API and print tables.

The API is at ``--url`` (``SAGA_URL``, default http://127.0.0.1:8000); the key,
if the API has one, comes from ``SAGA_API_KEY``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click
import httpx

from orchestrator.harness.tables import short_time, table

FINAL = {"completed", "compensated", "failed"}

url_option = click.option(
    "--url",
    envvar="SAGA_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The orchestrator's base URL (SAGA_URL).",
)


def _client(url: str) -> httpx.Client:
    key = os.environ.get("SAGA_API_KEY", "").split(",")[0].strip()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def _call(url: str, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client(url) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the orchestrator at {url}: {exc}") from None
    data = response.json() if response.content else {}
    if response.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        message = error.get("message", response.text)
        fields = "; ".join(f"{f['field']}: {f['message']}" for f in error.get("fields", []))
        raise click.ClickException(
            f"{response.status_code} {message}" + (f" ({fields})" if fields else "")
        )
    return data


def _parse_input(raw: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if raw:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="FIELDS")
        try:
            data[key] = json.loads(value)
        except ValueError:
            data[key] = value
    return data


def print_saga(saga: dict[str, Any]) -> None:
    click.echo(
        f"saga {saga['id']}  {saga['definition']} v{saga['definition_version']}  "
        f"status: {saga['status']}"
    )
    if saga.get("error"):
        e = saga["error"]
        click.echo(f"error: step {e['step']} ({e['phase']}): {e['message']}")
    rows = [
        (
            s["name"],
            s.get("kind"),
            s["status"],
            s["attempts"],
            s["compensation_attempts"],
            short_time(s["started_at"]),
            short_time(s["finished_at"]),
            s["last_error"],
        )
        for s in saga["steps"]
    ]
    click.echo(
        table(
            ["step", "kind", "status", "tries", "comp", "started", "finished", "last error"], rows
        )
    )


@click.command()
@url_option
@click.argument("definition")
@click.argument("fields", nargs=-1)
@click.option("--input", "raw_input", help="The saga input as JSON.")
@click.option("--version", type=int, help="Definition version (default: latest).")
@click.option("--idempotency-key", help="Start at most one saga for this key.")
@click.option("--wait", is_flag=True, help="Wait until the saga stops, then show it.")
def start(
    url: str,
    definition: str,
    fields: tuple[str, ...],
    raw_input: str | None,
    version: int | None,
    idempotency_key: str | None,
    wait: bool,
) -> None:
    """Start a saga: `saga start order --input '{...}'` or `saga start order sku=A1 qty=2`."""
    body: dict[str, Any] = {"definition": definition, "input": _parse_input(raw_input, fields)}
    if version is not None:
        body["version"] = version
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    saga = _call(url, "POST", "/v1/sagas", json=body, headers=headers)
    if not wait:
        click.echo(saga["id"])
        return
    deadline = time.monotonic() + 120
    while saga["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        saga = _call(url, "GET", f"/v1/sagas/{saga['id']}")
    print_saga(saga)


@click.command()
@url_option
@click.argument("saga_id")
@click.option("--events/--no-events", default=True, show_default=True, help="Show the history.")
def show(url: str, saga_id: str, events: bool) -> None:
    """Show a saga step by step, then its history."""
    print_saga(_call(url, "GET", f"/v1/sagas/{saga_id}"))
    if events:
        items = _call(url, "GET", f"/v1/sagas/{saga_id}/events")["items"]
        click.echo("")
        rows = []
        for e in items:
            d = e.get("detail") or {}
            what = (
                f"{d.get('from')} -> {d.get('to')}"
                if e["kind"] == "transition"
                else d.get("error") or d.get("action") or d.get("status")
            )
            rows.append(
                (
                    short_time(e["at"]),
                    e["kind"],
                    e["step"],
                    e["phase"],
                    e["attempt"],
                    e["outcome"],
                    d.get("duration_ms"),
                    what,
                )
            )
        click.echo(table(["at", "event", "step", "phase", "try", "outcome", "ms", "detail"], rows))


@click.command("list")
@url_option
@click.option("--status")
@click.option("--definition")
@click.option("--limit", default=20, show_default=True)
def list_(url: str, status: str | None, definition: str | None, limit: int) -> None:
    """List sagas, newest first."""
    params = {
        k: v
        for k, v in {"status": status, "definition": definition, "limit": limit}.items()
        if v is not None
    }
    page = _call(url, "GET", "/v1/sagas", params=params)
    rows = [
        (
            s["id"],
            s["definition"],
            s["status"],
            _current_step(s),
            short_time(s["created_at"]),
            short_time(s["updated_at"]),
        )
        for s in page["items"]
    ]
    click.echo(table(["id", "definition", "status", "at step", "created", "updated"], rows))


def _current_step(saga: dict[str, Any]) -> str:
    """The step a saga is at: the one its error names, else the first not yet done."""
    if saga.get("error"):
        return str(saga["error"]["step"])
    active = ("running", "compensating", "failed", "rejected", "compensation_failed")
    return next((st["name"] for st in saga["steps"] if st["status"] in active), "-")


def _request_command(action: str, help_text: str) -> click.Command:
    @click.command(action, help=help_text)
    @url_option
    @click.argument("saga_id")
    def command(url: str, saga_id: str) -> None:
        print_saga(_call(url, "POST", f"/v1/sagas/{saga_id}/{action}"))

    return command


@click.group()
def faults() -> None:
    """Transport fault rules (the orchestrator must run with SAGA_ENABLE_FAULTS=1)."""


@faults.command("add")
@url_option
@click.option(
    "--mode",
    required=True,
    type=click.Choice(["error", "timeout", "delay", "drop_request", "drop_response"]),
)
@click.option("--participant")
@click.option("--step")
@click.option("--phase", type=click.Choice(["action", "compensation"]))
@click.option("--definition")
@click.option("--status", type=int)
@click.option("--delay-ms", type=int)
@click.option("--probability", type=float)
@click.option("--count", type=int)
@click.option("--seed", type=int)
def faults_add(url: str, **options: Any) -> None:
    """Add a rule: `saga faults add --participant payments --mode drop_response`."""
    body = {k: v for k, v in options.items() if v is not None}
    rule = _call(url, "POST", "/v1/faults", json=body)
    click.echo(f"fault rule {rule['id']} added")


@faults.command("list")
@url_option
def faults_list(url: str) -> None:
    """List rules and how often each fired."""
    items = _call(url, "GET", "/v1/faults")["items"]
    rows = [
        (
            r["id"],
            r["mode"],
            r["participant"],
            r["step"],
            r["phase"],
            r["probability"],
            r["count"],
            r["fired"],
        )
        for r in items
    ]
    click.echo(table(["id", "mode", "participant", "step", "phase", "p", "count", "fired"], rows))


@faults.command("delete")
@url_option
@click.argument("rule_id", type=int)
def faults_delete(url: str, rule_id: int) -> None:
    """Delete one rule."""
    _call(url, "DELETE", f"/v1/faults/{rule_id}")
    click.echo(f"fault rule {rule_id} deleted")


@faults.command("clear")
@url_option
def faults_clear(url: str) -> None:
    """Delete every rule."""
    click.echo(f"{_call(url, 'DELETE', '/v1/faults')['deleted']} rules deleted")


@click.command("register")
@url_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def register(url: str, path: str) -> None:
    """Register a definition from a JSON file."""
    with open(path, encoding="utf-8") as f:
        body = json.load(f)
    stored = _call(url, "POST", "/v1/definitions", json=body)
    click.echo(f"{stored['name']} v{stored['version']}")


COMMANDS: list[click.Command] = [
    start,
    show,
    list_,
    faults,
    register,
    _request_command("cancel", "Cancel a running saga (it compensates)."),
    _request_command("retry", "Resume a failed saga where it stopped."),
    _request_command("compensate", "Compensate a failed saga parked before its pivot."),
]
