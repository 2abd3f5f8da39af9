"""The public face of the library: ``orchestrator.__all__``, cheap to import, nothing more."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

import orchestrator


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in orchestrator.__all__:
        value = getattr(orchestrator, name)
        assert value is not None, name
        exec(f"from orchestrator import {name}", {})


def test_each_name_is_the_object_of_the_module_that_defines_it() -> None:
    from orchestrator.definitions import SagaDefinition
    from orchestrator.errors import OrchestratorError
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings

    assert orchestrator.SagaDefinition is SagaDefinition
    assert orchestrator.Settings is Settings
    assert orchestrator.Runtime is Runtime
    assert orchestrator.OrchestratorError is OrchestratorError
    assert isinstance(orchestrator.__version__, str)
    assert orchestrator.__version__


def test_nothing_else_is_public_by_accident() -> None:
    for name in orchestrator.__all__:
        getattr(orchestrator, name)  # every lazy name loaded, as after real use
    public = {
        name
        for name, value in vars(orchestrator).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public <= set(orchestrator.__all__), public - set(orchestrator.__all__)
    assert dir(orchestrator) == sorted(orchestrator.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        orchestrator.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_loads_none_of_the_heavy_modules() -> None:
    """The command line imports ``orchestrator`` first; its help must not wait for the
    web framework, the database toolkit or the HTTP client."""
    code = (
        "import sys, orchestrator; "
        "print(' '.join(m for m in ('fastapi', 'sqlalchemy', 'httpx', 'pydantic', "
        "'orchestrator.runtime', 'importlib.metadata') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_names_come_from_their_homes() -> None:
    homes = orchestrator._HOMES
    assert set(orchestrator.__all__) == {"__version__", *homes}
    for name, home in homes.items():
        assert getattr(importlib.import_module(home), name) is getattr(orchestrator, name)
