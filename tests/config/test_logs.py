"""Log formats: key=value fields parsed from messages, the JSON and the text formatters."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from timer.config.loader import ConfigError, load_config
from timer.config.logs import ExpectedOutages, KeyValueFields, logging_config, message_fields


@pytest.mark.parametrize(
    "message, fields",
    [
        (
            "node=slimy-cardinal client=4f0c event=connect resumed=True next=42",
            {
                "node": "slimy-cardinal",
                "client": "4f0c",
                "event": "connect",
                "resumed": "True",
                "next": "42",
            },
        ),
        (
            "node=a client=b event=disconnect code=1012 last=57",
            {"node": "a", "client": "b", "event": "disconnect", "code": "1012", "last": "57"},
        ),
        (
            "node=a client=b event=takeover: a newer connection holds the session",
            {"node": "a", "client": "b", "event": "takeover"},
        ),
        (
            "node=a event=drain-start source=admin notice=3s",
            {"node": "a", "event": "drain-start", "source": "admin", "notice": "3s"},
        ),
        (
            'node=a origin="https://evil.example/ x=1" event=refused',
            {"node": "a", "origin": "https://evil.example/ x=1", "event": "refused"},
        ),
        (
            'node=a refused a connection from "10.0.0.1 event=forged": bad id (code=1)',
            {"node": "a"},
        ),
        ("This server is named: slimy-cardinal", {}),
    ],
)
def test_message_fields__table(message, fields):
    """Pairs become fields; text inside quotes or glued to other words never does."""
    assert message_fields(message) == fields


def _record(msg: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("timer.web.consumers", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_key_value_fields__sets_attributes_from_lazy_arguments():
    """The filter reads the formatted message, so %s arguments count."""
    record = _record("node=%s client=%s event=connect", "n1", "c1")
    assert KeyValueFields().filter(record) is True
    assert (record.node, record.client, record.event) == ("n1", "c1", "connect")


def test_key_value_fields__never_overrides_record_attributes_or_extra():
    """``name=`` in a message leaves the logger name alone; ``extra=`` wins over the message."""
    record = _record("name=forged node=from-message event=x", node="from-extra")
    KeyValueFields().filter(record)
    assert record.name == "timer.web.consumers"
    assert record.node == "from-extra"


def _emit(log_format: str, msg: str, *args) -> str:
    stream = io.StringIO()
    config = logging_config(level="INFO", log_format=log_format)
    config["handlers"]["console"]["stream"] = stream
    del config["root"]  # leave the test run's own handlers alone
    config["loggers"] = {
        "wstime.test.logs": {"handlers": ["console"], "level": "INFO", "propagate": False}
    }
    logging.config.dictConfig(config)
    try:
        logging.getLogger("wstime.test.logs").info(msg, *args)
    finally:
        logging.getLogger("wstime.test.logs").handlers.clear()
    return stream.getvalue()


def test_logging_config__json_has_node_client_event_fields():
    """WSTIME_LOG_FORMAT=json writes one object per line with the event's fields."""
    line = _emit("json", "node=%s client=%s event=disconnect code=%s last=%d", "n1", "c1", 1000, 7)
    entry = json.loads(line)
    assert entry["node"] == "n1" and entry["client"] == "c1" and entry["event"] == "disconnect"
    assert entry["code"] == "1000" and entry["last"] == "7"
    assert entry["message"] == "node=n1 client=c1 event=disconnect code=1000 last=7"
    assert entry["level"] == "INFO" and entry["logger"] == "wstime.test.logs" and entry["time"]


def test_logging_config__text_is_unchanged():
    """The default text format is the plain line it always was."""
    line = _emit("text", "node=%s client=%s event=connect", "n1", "c1")
    assert line.rstrip("\n").endswith(" INFO wstime.test.logs node=n1 client=c1 event=connect")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_load_config__log_format():
    """text and json parse (any case); anything else is timer.E001's business."""
    assert load_config({}, SimpleNamespace()).log_format == "text"
    assert load_config({"WSTIME_LOG_FORMAT": "JSON"}, SimpleNamespace()).log_format == "json"
    with pytest.raises(ConfigError) as caught:
        load_config({"WSTIME_LOG_FORMAT": "xml"}, SimpleNamespace())
    assert caught.value.problems == [("WSTIME_LOG_FORMAT", "expected text or json, got 'xml'")]


def _connection_error_record(error: Exception | None = None) -> logging.LogRecord:
    try:
        raise error or RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")
    except (RedisConnectionError, RedisTimeoutError):
        return logging.LogRecord(
            "channels_redis.pubsub",
            logging.ERROR,
            __file__,
            1,
            "Unexpected exception in receive task",
            None,
            sys.exc_info(),
        )


def test_expected_outages__a_redis_outage_is_one_line_per_period():
    """channels-redis's once-a-second outage traceback becomes one warning per period."""
    now = [0.0]
    outages = ExpectedOutages(every=30, clock=lambda: now[0])
    kept = []
    for now[0] in (0.0, 1.0, 2.0, 31.0):
        record = _connection_error_record()
        if outages.filter(record):
            kept.append(record)
    assert [r.levelname for r in kept] == ["WARNING", "WARNING"]
    assert all(r.exc_info is None for r in kept)
    assert kept[0].getMessage().startswith("Unexpected exception in receive task (ConnectionError")
    assert "2 similar lines" in kept[1].getMessage()


def test_expected_outages__other_errors_keep_their_traceback():
    """Anything but a connection error is left as it was, traceback included."""
    try:
        raise KeyError("bug")
    except KeyError:
        record = logging.LogRecord(
            "channels_redis.pubsub", logging.ERROR, __file__, 1, "boom", None, sys.exc_info()
        )
    assert ExpectedOutages().filter(record) and record.exc_info is not None


def test_logging_config__channels_redis_outages_are_filtered():
    """The node's logging puts the outage filter on the logger channels-redis writes to."""
    config = logging_config(level="INFO", log_format="text")
    assert config["loggers"]["channels_redis.pubsub"]["filters"] == ["outages"]


def test_expected_outages__a_connect_timeout_is_an_outage_too():
    """'Timeout connecting to server' (a cut link) is folded like a refused connection."""
    record = _connection_error_record(RedisTimeoutError("Timeout connecting to server"))
    assert ExpectedOutages().filter(record) and record.exc_info is None
    assert "TimeoutError: Timeout connecting to server" in record.getMessage()
