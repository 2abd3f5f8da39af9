"""The history checker: a clean synthetic history passes; each planted anomaly is found, alone.

The histories are built by hand the way the campaign's client records them
(an invoke, then one completion), for five sagas that together use every
operation: one completed, one cancelled before its pivot, one parked then
retried, one whose cancel came too late (409), and one started twice under
its key (the first answer lost).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from orchestrator.check.history import Entry, Recorder, read_history
from orchestrator.check.history_check import (
    KINDS,
    MACHINE_EDGES,
    OPERATOR_EDGES,
    Verdict,
    check_history,
)
from orchestrator.cli import main

STEPS = ("create_order", "reserve_stock", "charge", "create_shipment")
PIVOT = "charge"


def view(saga: str, status: str, version: int, **steps: str) -> dict[str, Any]:
    """An observed saga, as the recorder keeps it."""
    return {
        "id": saga,
        "status": status,
        "version": version,
        "steps": {name: steps.get(name, "pending") for name in STEPS},
        "pivot": PIVOT,
    }


def started() -> dict[str, Any]:
    return {"kind": "started", "status": "running"}


def move(source: str, target: str) -> dict[str, Any]:
    return {"kind": "transition", "from": source, "to": target}


def call(step: str, phase: str = "action") -> dict[str, Any]:
    return {"kind": "call", "step": step, "phase": phase, "outcome": "success"}


def operator(action: str) -> dict[str, Any]:
    return {"kind": "operator", "action": action}


@dataclass
class History:
    """Builds entries: each operation invoked and completed in turn, 1 ms apart."""

    entries: list[Entry] = field(default_factory=list)
    clock: int = 0
    ops: int = 0

    def _entry(self, type: str, f: str, op: int, **fields: Any) -> None:
        self.clock += 1_000_000
        self.entries.append(
            Entry(
                index=len(self.entries),
                type=type,  # type: ignore[arg-type]
                f=f,
                op=op,
                process="lane-0",
                time_ns=self.clock,
                wall=f"t{self.clock // 1_000_000}",
                **fields,
            )
        )

    def invoke(self, f: str, saga: str | None = None, key: str | None = None) -> int:
        self.ops += 1
        self._entry("invoke", f, self.ops, saga=saga, key=key)
        return self.ops

    def complete(self, op: int, f: str, type: str, saga: str | None, **fields: Any) -> None:
        self._entry(type, f, op, saga=saga, **fields)

    def op(
        self,
        f: str,
        saga: str,
        type: str = "ok",
        value: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        http_status: int | None = None,
    ) -> None:
        op = self.invoke(f, None if f == "start" else saga, key)
        status = http_status or {"ok": 200, "fail": 409, "info": 503}[type]
        self.complete(op, f, type, saga, value=value, http_status=status)

    def history(self, saga: str, *events: dict[str, Any]) -> None:
        numbered = [{"id": 10 * (n + 1), **e} for n, e in enumerate(events)]
        self.op("history", saga, value={"id": saga, "events": numbered})


Plant = Callable[[History], None]


def clean(plants: Mapping[str, Plant] | None = None) -> list[Entry]:
    """The clean history; each plant runs in place of the step it is named after."""
    h = History()
    plants = plants or {}

    def step(name: str, normal: Callable[[], None]) -> None:
        if name in plants:
            plants[name](h)
        else:
            normal()

    # s-done: started, read twice, completed.
    h.op("start", "s-done", value=view("s-done", "running", 1), key="k-done")
    step("done-read", lambda: h.op("read", "s-done", value=view("s-done", "running", 3)))
    h.op("read", "s-done", value=view("s-done", "completed", 9, **dict.fromkeys(STEPS, "ok")))
    step(
        "done-history",
        lambda: h.history("s-done", started(), *map(call, STEPS), move("running", "completed")),
    )
    # s-cancel: cancelled before its pivot, compensated.
    h.op("start", "s-cancel", value=view("s-cancel", "running", 1), key="k-cancel")
    step(
        "cancel",
        lambda: h.op(
            "cancel", "s-cancel", value=view("s-cancel", "compensating", 3, create_order="ok")
        ),
    )
    step(
        "cancel-read",
        lambda: h.op("read", "s-cancel", value=view("s-cancel", "compensated", 6)),
    )
    step(
        "cancel-history",
        lambda: h.history(
            "s-cancel",
            started(),
            call("create_order"),
            operator("cancel"),
            move("running", "compensating"),
            call("create_order", "compensation"),
            move("compensating", "compensated"),
        ),
    )
    # s-parked: parked as failed, retried by an operator, completed; its first start's answer
    # was lost (503) and the start sent again under the same key.
    h.op("start", "s-parked", "info", key="k-parked")
    h.op("start", "s-parked", value=view("s-parked", "running", 2), key="k-parked")
    h.op("read", "s-parked", value=view("s-parked", "failed", 5))
    step("retry", lambda: h.op("retry", "s-parked", value=view("s-parked", "running", 6)))
    h.op("read", "s-parked", value=view("s-parked", "completed", 12))
    step(
        "parked-history",
        lambda: h.history(
            "s-parked",
            started(),
            move("running", "failed"),
            operator("retry"),
            move("failed", "running"),
            call(PIVOT),
            move("running", "completed"),
        ),
    )
    # s-late: a cancel refused past the pivot; the saga completes.
    h.op("start", "s-late", value=view("s-late", "running", 1), key="k-late")
    step("late-cancel", lambda: h.op("cancel", "s-late", "fail"))
    h.op("read", "s-late", value=view("s-late", "completed", 8))
    step(
        "late-history",
        lambda: h.history("s-late", started(), call(PIVOT), move("running", "completed")),
    )
    step("end", lambda: None)
    return h.entries


def kinds(verdict: Verdict) -> list[tuple[str, str | None]]:
    return [(a.kind, a.saga_id) for a in verdict.anomalies]


def test_a_clean_history_passes_every_rule() -> None:
    verdict = check_history(clean())
    assert verdict.ok, verdict.anomalies
    assert verdict.sagas == 4
    assert verdict.operations["start"] == {"info": 1, "ok": 4}
    assert verdict.operations["cancel"] == {"fail": 1, "ok": 1}
    assert verdict.checked["cancel_honoured"] == 1
    assert verdict.checked["chain"] == 4
    assert all(r.ok for r in verdict.results())
    assert {r.name for r in verdict.results()} == {
        "history_status_path",
        "history_start_kept",
        "history_cancel_honoured",
        "history_requests_accounted",
        "history_chain",
        "history_versions_monotonic",
    }


def test_the_allowed_edges_are_the_machines() -> None:
    assert ("compensated", "running") not in MACHINE_EDGES | OPERATOR_EDGES
    assert not any(source == "completed" for source, _ in MACHINE_EDGES | OPERATOR_EDGES)
    assert {("failed", "running"), ("failed", "compensating")} == OPERATOR_EDGES


def test_a_status_going_backwards_is_found() -> None:
    def plant(h: History) -> None:
        h.op("read", "s-cancel", value=view("s-cancel", "running", 4))
        h.op("read", "s-cancel", value=view("s-cancel", "compensated", 6))

    verdict = check_history(clean({"cancel-read": plant}))
    assert kinds(verdict) == [("illegal_status_change", "s-cancel")]
    assert "compensating then running" in verdict.anomalies[0].message


def test_completed_then_running_is_found() -> None:
    def plant(h: History) -> None:
        h.op("read", "s-done", value=view("s-done", "running", 10))
        h.history("s-done", started(), *map(call, STEPS), move("running", "completed"))

    verdict = check_history(clean({"done-history": plant}))
    assert kinds(verdict) == [("illegal_status_change", "s-done")]
    assert "completed then running" in verdict.anomalies[0].message


def test_leaving_failed_without_an_operator_request_is_found() -> None:
    # The retry was refused: nothing licenses failed -> running.
    verdict = check_history(clean({"retry": lambda h: h.op("retry", "s-parked", "fail")}))
    found = kinds(verdict)
    assert ("illegal_status_change", "s-parked") in found
    assert "failed then completed" in verdict.anomalies[0].message
    # ... and the history's operator retry is a refused request that took effect.
    assert set(found) == {
        ("illegal_status_change", "s-parked"),
        ("refused_request_took_effect", "s-parked"),
    }


def test_a_lost_acknowledged_start_is_found() -> None:
    def plant(h: History) -> None:
        h.op("start", "s-lost", value=view("s-lost", "running", 1), key="k-lost")
        h.op("read", "s-lost", "fail", http_status=404)

    verdict = check_history(clean({"end": plant}))
    assert kinds(verdict) == [("lost_start", "s-lost")]
    assert "404" in verdict.anomalies[0].message


def test_an_acknowledged_start_never_seen_again_is_lost() -> None:
    def plant(h: History) -> None:
        h.op("start", "s-lost", value=view("s-lost", "running", 1), key="k-lost")

    assert kinds(check_history(clean({"end": plant}))) == [("lost_start", "s-lost")]


def test_one_key_starting_two_sagas_is_found() -> None:
    def plant(h: History) -> None:
        h.op("start", "s-other", value=view("s-other", "running", 1), key="k-done")
        h.op("read", "s-other", value=view("s-other", "running", 2))

    verdict = check_history(clean({"end": plant}))
    assert kinds(verdict) == [("start_key_split", "s-done")]
    assert "s-other" in verdict.anomalies[0].message


def test_a_cancel_acknowledged_before_the_pivot_yet_completed_is_found() -> None:
    def cancel(h: History) -> None:
        h.op("cancel", "s-cancel", value=view("s-cancel", "running", 3))

    def read(h: History) -> None:
        h.op("read", "s-cancel", value=view("s-cancel", "completed", 9, charge="succeeded"))

    def history(h: History) -> None:
        h.history(
            "s-cancel",
            started(),
            call("create_order"),
            operator("cancel"),
            call(PIVOT),
            move("running", "completed"),
        )

    verdict = check_history(
        clean({"cancel": cancel, "cancel-read": read, "cancel-history": history})
    )
    # One fault, two witnesses: the end status, and the pivot that ran after the cancel.
    assert kinds(verdict) == [
        ("cancel_not_compensated", "s-cancel"),
        ("pivot_after_cancel", "s-cancel"),
    ]
    assert "ended completed" in verdict.anomalies[0].message


def test_a_refused_cancel_that_took_effect_is_found() -> None:
    def plant(h: History) -> None:
        h.history(
            "s-late", started(), operator("cancel"), call(PIVOT), move("running", "completed")
        )

    verdict = check_history(clean({"late-history": plant}))
    assert kinds(verdict) == [("refused_request_took_effect", "s-late")]
    assert "1 refused" in verdict.anomalies[0].message


def test_an_acknowledged_cancel_missing_from_the_history_is_found() -> None:
    def plant(h: History) -> None:
        h.history(
            "s-cancel",
            started(),
            move("running", "compensating"),
            move("compensating", "compensated"),
        )

    verdict = check_history(clean({"cancel-history": plant}))
    assert kinds(verdict) == [("acknowledged_request_lost", "s-cancel")]


def test_a_gap_in_the_chain_of_transitions_is_found() -> None:
    # Events carry no per-saga version; a missing transition is the gap to find.
    def plant(h: History) -> None:
        h.history(
            "s-parked",
            started(),
            operator("retry"),
            move("failed", "running"),
            move("running", "completed"),
        )

    verdict = check_history(clean({"parked-history": plant}))
    assert kinds(verdict) == [("history_gap", "s-parked")]
    assert "failed -> running follows running" in verdict.anomalies[0].message


def test_a_status_a_read_saw_that_the_history_never_records_is_a_gap() -> None:
    def plant(h: History) -> None:
        h.op("read", "s-done", value=view("s-done", "failed", 4))
        h.op("retry", "s-done", value=view("s-done", "running", 5))

    verdict = check_history(clean({"done-read": plant}))
    # The history lost the park and the retry: its operator event is missing too.
    assert kinds(verdict) == [
        ("acknowledged_request_lost", "s-done"),
        ("history_gap", "s-done"),
    ]
    assert "reads saw failed, which the history never records" in verdict.anomalies[1].message


def test_history_events_out_of_order_are_found() -> None:
    def plant(h: History) -> None:
        events = [started(), *map(call, STEPS), move("running", "completed")]
        numbered = [{"id": 10 * (n + 1), **e} for n, e in enumerate(events)]
        numbered[1]["id"], numbered[2]["id"] = numbered[2]["id"], numbered[1]["id"]
        h.op("history", "s-done", value={"id": "s-done", "events": numbered})

    verdict = check_history(clean({"done-history": plant}))
    assert kinds(verdict) == [("history_order", "s-done")]


def test_a_version_going_backwards_is_found() -> None:
    def plant(h: History) -> None:
        h.op("read", "s-done", value=view("s-done", "running", 3))
        h.op("read", "s-done", value=view("s-done", "running", 2))

    verdict = check_history(clean({"done-read": plant}))
    assert kinds(verdict) == [("version_backwards", "s-done")]
    assert "version 2 after read saw 3" in verdict.anomalies[0].message


def test_one_version_with_two_statuses_is_found() -> None:
    def plant(h: History) -> None:
        h.op("read", "s-cancel", value=view("s-cancel", "compensated", 3))

    verdict = check_history(clean({"cancel-read": plant}))
    assert kinds(verdict) == [("version_fork", "s-cancel")]


def test_overlapping_reads_are_not_ordered() -> None:
    # Two reads in flight together may be answered in either order.
    def plant(h: History) -> None:
        first = h.invoke("read", "s-done")
        second = h.invoke("read", "s-done")
        h.complete(second, "read", "ok", "s-done", value=view("s-done", "running", 4))
        h.complete(first, "read", "ok", "s-done", value=view("s-done", "running", 2))

    assert check_history(clean({"done-read": plant})).ok


def test_an_operation_without_completion_counts_as_unknown() -> None:
    # The client died with its cancel in flight: it may have taken effect.
    def plant(h: History) -> None:
        h.invoke("cancel", "s-cancel")
        h.op("read", "s-cancel", value=view("s-cancel", "compensated", 6))

    verdict = check_history(clean({"cancel": plant}))
    assert verdict.ok, verdict.anomalies
    assert verdict.operations["cancel"] == {"fail": 1, "info": 1}


def test_every_kind_has_a_rule() -> None:
    planted = {
        "illegal_status_change",
        "lost_start",
        "start_key_split",
        "cancel_not_compensated",
        "pivot_after_cancel",
        "acknowledged_request_lost",
        "refused_request_took_effect",
        "history_gap",
        "history_order",
        "version_backwards",
        "version_fork",
    }
    assert set(KINDS) == planted


def _written(tmp_path: Path, entries: list[Entry]) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(e.as_json()) + "\n" for e in entries))
    return path


def test_the_recorder_streams_entries_that_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "run" / "history.jsonl"
    recorder = Recorder(path)
    op = recorder.invoke("start", key="k-1")
    recorder.complete(op, "ok", value=view("s-1", "running", 1), http_status=201)
    other = recorder.invoke("read", saga="s-1")
    recorder.complete(other, "info", error="ReadTimeout")
    assert len(path.read_text().splitlines()) == 4  # on disk before close
    recorder.close()
    entries = read_history(path)
    assert entries == recorder.entries
    assert [e.type for e in entries] == ["invoke", "ok", "invoke", "info"]
    assert entries[1].saga == "s-1"  # a start's saga is known from its answer
    assert entries[1].time_ns >= entries[0].time_ns


def test_the_cli_prints_a_clean_verdict(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check-history", str(_written(tmp_path, clean()))])
    assert result.exit_code == 0, result.output
    assert "history clean" in result.output


def test_the_cli_fails_on_anomalies(tmp_path: Path) -> None:
    def plant(h: History) -> None:
        h.op("read", "s-done", value=view("s-done", "running", 3))
        h.op("read", "s-done", value=view("s-done", "running", 2))

    path = _written(tmp_path, clean({"done-read": plant}))
    result = CliRunner().invoke(main, ["check-history", str(path)])
    assert result.exit_code == 1, result.output
    assert "version_backwards [s-done]" in result.output
    as_json = CliRunner().invoke(main, ["check-history", str(path), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["anomalies_by_kind"] == {"version_backwards": ["s-done"]}


def test_the_cli_refuses_a_file_that_is_not_a_history(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    path.write_text('{"hello": 1}\n')
    result = CliRunner().invoke(main, ["check-history", str(path)])
    assert result.exit_code == 2
    assert "not a history entry" in result.output


def test_one_write_may_take_several_steps_of_the_table() -> None:
    # A first step refused leaves nothing to compensate: running -> compensated at once.
    h = History()
    h.op("start", "s-refused", value=view("s-refused", "running", 1), key="k-refused")
    h.op("read", "s-refused", value=view("s-refused", "compensated", 3))
    h.history("s-refused", started(), call("create_order"), move("running", "compensated"))
    verdict = check_history(h.entries)
    assert verdict.ok, verdict.anomalies


def test_a_transition_the_machine_cannot_make_is_found() -> None:
    def plant(h: History) -> None:
        h.history(
            "s-cancel",
            started(),
            operator("cancel"),
            move("running", "compensated"),
            move("compensated", "compensating"),
            move("compensating", "compensated"),
        )

    verdict = check_history(clean({"cancel-history": plant}))
    assert kinds(verdict) == [("history_gap", "s-cancel")]
    assert (
        "compensated -> compensating is not one the machine makes" in verdict.anomalies[0].message
    )
