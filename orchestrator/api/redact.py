"""Keep secrets out of logs: a filter that masks them in every record a process writes.

The code never logs an API key, a callback token or a database password on
purpose; this filter is the second line, for what a library puts into an
exception message or a traceback (a connection URL, a request header).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from orchestrator.settings import Settings

MASK = "***"

# Secrets that have a recognisable shape even when we do not know their value:
# bearer credentials, callback tokens in a header dump, and URL passwords.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s'\",]+"),
    re.compile(r"(?i)(x-saga-callback-token['\"]?\s*[:=,]\s*b?['\"]?)[^\s'\",)]+"),
    re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s/'\"]+(?=@)"),
)


def _password(url: str) -> str | None:
    scheme_rest = url.partition("://")[2]
    userinfo, at, _ = scheme_rest.partition("/")[0].rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.partition(":")[2] or None


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value ``settings`` holds: API keys, the callback key, URL passwords."""
    values = [*settings.api_keys()]
    if settings.callback_secret:
        values.append(settings.callback_secret)
    urls = [settings.database_url, *(u for urls in settings.participants.values() for u in urls)]
    values.extend(p for p in map(_password, urls) if p)
    # Very short values would mask ordinary words; such keys are refused elsewhere anyway.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every secret-shaped value masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so masking it here covers them all.
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def _all_handlers() -> set[logging.Handler]:
    handlers = set(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.update(logger.handlers)
    return handlers


def install(log_filter: SecretFilter) -> list[logging.Handler]:
    """Attach ``log_filter`` to every handler configured now; returns them for :func:`remove`."""
    handlers = [h for h in _all_handlers() if log_filter not in h.filters]
    for handler in handlers:
        handler.addFilter(log_filter)
    return handlers


def remove(log_filter: SecretFilter, handlers: Iterable[logging.Handler]) -> None:
    for handler in handlers:
        handler.removeFilter(log_filter)
