"""Command line of the example services: ``python -m participants.<service>``.

Migrates the service's database to head (unless ``--no-migrate``), seeds the
demo rows (unless ``--no-seed``; seeding only adds what is missing), then
serves the app with uvicorn. Configuration comes from ``PARTICIPANT_*``
variables (see :class:`participants.kit.ParticipantSettings`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from participants.kit import ParticipantSettings, upgrade
from participants.kit.settings import resolve_database_url
from participants.registry import SERVICES


def main(service: str, argv: Sequence[str] | None = None) -> None:
    """Run ``service`` as a process."""
    spec = SERVICES[service]
    parser = argparse.ArgumentParser(
        prog=f"python -m participants.{service}", description=spec.description
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=spec.port, help="port to bind")
    parser.add_argument("--no-migrate", action="store_true", help="do not run migrations first")
    parser.add_argument("--no-seed", action="store_true", help="do not add the demo rows")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (info)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    # A broker restart: aio-pika says "reconnecting" once per attempt; aiormq's
    # traceback of the reset and callback errors while the channel is gone add nothing.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika.tools").setLevel(logging.CRITICAL)
    try:
        settings = ParticipantSettings()
    except ValidationError as exc:
        # Pydantic's message repeats the input, which may be a URL with its password.
        problems = [
            f"PARTICIPANT_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        parser.exit(2, f"{parser.prog}: invalid configuration: {'; '.join(problems)}\n")
    url = resolve_database_url(service, settings)
    if not args.no_migrate:
        upgrade(service, url)
    if not args.no_seed:
        asyncio.run(spec.seed(url))
    uvicorn.run(spec.create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
