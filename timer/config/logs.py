"""Log formats: the plain text lines, or one JSON object per line with the message's fields.

Connection events are logged as ``node=slimy-cardinal client=4f0c event=connect resumed=True``.
:class:`KeyValueFields` copies those ``key=value`` pairs onto the record, so the JSON format
carries ``node``, ``client`` and ``event`` as fields without changing a single log call, and the
text format stays exactly as it was.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# A key, then a value that is either a double-quoted string (escapes allowed) or runs to the next
# space. Keys are lowercase words with '-' or '_', as the node writes them.
# A quoted string that is not a value is matched too, and skipped, so that text inside quotes
# (a client's forged "x=y") never becomes a field.
_PAIR = re.compile(
    r'"(?:[^"\\]|\\.)*"|(?:^|(?<=\s))([a-z][a-z0-9_-]*)=("(?:[^"\\]|\\.)*"|[^\s"]\S*|)'
)
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def message_fields(message: str) -> dict[str, str]:
    """Return the ``key=value`` pairs of a log message (quoted values unquoted), first one wins.

    A value that ends in ``:`` or ``,`` (``event=takeover: a newer ...``) loses that
    punctuation: it belongs to the sentence, not to the value.
    """
    fields: dict[str, str] = {}
    for match in _PAIR.finditer(message):
        if match.group(1) is None:
            continue
        key, value = match.group(1).replace("-", "_"), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        else:
            value = value.rstrip(":,;")
        fields.setdefault(key, value)
    return fields


class KeyValueFields(logging.Filter):
    """Copy the message's ``key=value`` pairs onto the record as attributes; never drops one.

    A key that names a LogRecord attribute (``name``, ``msg``...) or that the call already set
    with ``extra=`` keeps its original value.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call is the formatter's to report
            return True
        for key, value in message_fields(message).items():
            if key not in _RESERVED and key not in record.__dict__:
                setattr(record, key, value)
        return True


class ExpectedOutages(logging.Filter):
    """Turn a dependency's traceback for an unreachable Redis into one line, once per period.

    channels-redis's pub/sub receive task logs every failed read during a Redis outage with
    ``logger.exception``, once a second (a refused or timed-out connection); the outage itself
    is already reported (the session store logs it, ``/metrics`` shows ``wstime_redis_up``).
    A connection error becomes a warning without its traceback, at most once per ``every``
    seconds; anything else passes untouched.
    """

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, (RedisConnectionError, RedisTimeoutError, OSError)):
            return True
        now = self._clock()
        if self._last is not None and now - self._last < self.every:
            self._suppressed += 1
            return False
        suppressed, self._last, self._suppressed = self._suppressed, now, 0
        message = record.getMessage()
        record.msg = "%s (%s: %s; Redis unreachable, %d similar lines in the last %ds left out)"
        record.args = (message, type(error).__name__, error, suppressed, self.every)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def logging_config(*, level: str, log_format: str) -> dict[str, Any]:
    """Django's LOGGING for a node: ``text`` (the default) or ``json`` lines on stderr."""
    formatters: dict[str, Any] = {"plain": {"format": TEXT_FORMAT}}
    if log_format == "json":
        formatters["json"] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "fields": {"()": "timer.config.logs.KeyValueFields"},
            "outages": {"()": "timer.config.logs.ExpectedOutages"},
        },
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                # Text lines already show the pairs; only JSON needs them as fields.
                "filters": ["fields"] if log_format == "json" else [],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "daphne": {"level": "WARNING"},
            "django.channels.server": {"level": "WARNING"},
            # A logger's filters see only its own records, not its children's: name the module.
            "channels_redis.pubsub": {"filters": ["outages"]},
        },
    }
