"""The doc's status diagrams are the rendering of the transition tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.machine import SAGA_TRANSITIONS, SagaStatus
from orchestrator.machine.diagram import DOC, SAGA_LABELS, main, render, render_doc, sections


def test_the_doc_shows_the_diagrams_rendered_from_the_tables() -> None:
    text = DOC.read_text()
    assert render_doc(text) == text, "run: python -m orchestrator.machine.diagram"


def test_every_generated_section_is_in_the_doc() -> None:
    text = DOC.read_text()
    for body in sections().values():
        assert body in text


def test_every_edge_is_drawn_once_and_final_statuses_end() -> None:
    saga = sections()["saga"]
    for source, targets in SAGA_TRANSITIONS.items():
        for target in targets:
            assert saga.count(f"    {source.value} --> {target.value} : ") == 1
    assert "    completed --> [*]" in saga
    assert "    compensated --> [*]" in saga
    assert "    failed --> [*]" not in saga


def test_an_edge_without_a_label_cannot_be_rendered() -> None:
    labels = dict(SAGA_LABELS)
    del labels[SagaStatus.RUNNING, SagaStatus.COMPLETED]
    with pytest.raises(ValueError, match="running -> completed"):
        render("saga", SAGA_TRANSITIONS, SagaStatus.RUNNING, labels)


def test_a_label_without_an_edge_cannot_be_rendered() -> None:
    labels = {**SAGA_LABELS, (SagaStatus.COMPLETED, SagaStatus.RUNNING): "never"}
    with pytest.raises(ValueError, match="completed -> running"):
        render("saga", SAGA_TRANSITIONS, SagaStatus.RUNNING, labels)


def test_the_command_rewrites_a_stale_doc_and_checks_a_fresh_one(tmp_path: Path) -> None:
    doc = tmp_path / "state-machine.md"
    fresh = DOC.read_text()
    doc.write_text(fresh.replace("last stage succeeded", "something else"))

    assert main(["--check", str(doc)]) == 1
    assert main([str(doc)]) == 0
    assert doc.read_text() == fresh
    assert main(["--check", str(doc)]) == 0
