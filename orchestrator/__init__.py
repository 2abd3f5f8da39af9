"""saga-orchestrator: a durable saga orchestrator.

The public face of the library, importable from ``orchestrator`` itself:

- saga definitions: :class:`SagaDefinition` and its parts (:class:`Step`,
  :class:`ParallelGroup`, :class:`Call`, :class:`Retry`), and
  :func:`parse_definition` to validate one from JSON-like data;
- :class:`Settings` (every ``SAGA_*`` setting), :class:`Runtime` (the
  engine, stores, transport and worker built from them) and
  :func:`create_app` (the REST API as an ASGI app, to serve or embed);
- the errors a caller may meet: :class:`OrchestratorError` and its kinds;
- ``__version__``.

Everything else (``orchestrator.machine``, ``orchestrator.store``, ...) is
inside the house and may change between versions. The names load on first
use: ``import orchestrator`` stays cheap for the command line, which needs
none of them to print its help.
"""

# Every module-level name without an underscore is public (tests/unit/test_public_face.py):
# the plumbing below goes under private names.
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from orchestrator.api.app import create_app
    from orchestrator.definitions import (
        Call,
        ParallelGroup,
        Retry,
        SagaDefinition,
        Step,
        parse_definition,
    )
    from orchestrator.errors import (
        Conflict,
        Forbidden,
        InvalidRequest,
        NotFound,
        OrchestratorError,
        PayloadTooLarge,
        Unavailable,
    )
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings

__all__ = [
    "Call",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "OrchestratorError",
    "ParallelGroup",
    "PayloadTooLarge",
    "Retry",
    "Runtime",
    "SagaDefinition",
    "Settings",
    "Step",
    "Unavailable",
    "__version__",
    "create_app",
    "parse_definition",
]

#: Public name -> the module that defines it.
_HOMES = {
    "Call": "orchestrator.definitions",
    "ParallelGroup": "orchestrator.definitions",
    "Retry": "orchestrator.definitions",
    "SagaDefinition": "orchestrator.definitions",
    "Step": "orchestrator.definitions",
    "parse_definition": "orchestrator.definitions",
    "Settings": "orchestrator.settings",
    "Runtime": "orchestrator.runtime",
    "create_app": "orchestrator.api.app",
    "OrchestratorError": "orchestrator.errors",
    "NotFound": "orchestrator.errors",
    "InvalidRequest": "orchestrator.errors",
    "Forbidden": "orchestrator.errors",
    "Conflict": "orchestrator.errors",
    "PayloadTooLarge": "orchestrator.errors",
    "Unavailable": "orchestrator.errors",
}


def __getattr__(name: str) -> _typing.Any:
    """Import a public name's module the first time the name is used."""
    if name == "__version__":
        value: _typing.Any = _version()
    elif name in _HOMES:
        value = getattr(_importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    globals()[name] = value  # later uses skip this function
    return value


def _version() -> str:
    # importlib.metadata reads the installed distribution's files: tens of
    # milliseconds, paid only by whoever asks for the version.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("saga-orchestrator")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def __dir__() -> list[str]:
    return sorted(__all__)
