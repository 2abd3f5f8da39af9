"""JSON encoding on the hot path: orjson, with the standard library as the fallback.

The saga state and every call body are encoded on each transition, where the
standard library's encoder was a visible share of a worker's CPU. orjson
refuses integers beyond 64 bits, which JSON (and Python) allow, so those
values take the slower, exact path. Decoding stays with the standard library:
orjson would turn such integers into floats, silently.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dumps_str(value: Any) -> str:
    """``value`` as compact JSON text."""
    return dumps(value).decode()
