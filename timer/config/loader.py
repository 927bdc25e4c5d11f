"""Every ``WSTIME_*`` setting, read in one place.

Each value comes from the environment first, then from a Django setting of the same name,
then from the default in :data:`SETTINGS`, the one place a default is written (the README table
and the health policy follow it). Values are parsed and validated by :func:`load_config`, which
is pure (it takes the two sources as mappings) so that the system check, the node at start-up
and the tests all share one parser. ``config()`` caches the result for the process and drops
the cache when a test overrides a Django setting. ``wstime/settings.py`` reads its values through
:func:`start_value` and :func:`environ_value` with the same parsers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


class ConfigError(ImproperlyConfigured):
    """One or more ``WSTIME_*`` settings cannot be used; ``problems`` says which and why."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {why}" for name, why in problems))


# --- parsers: each takes the raw value (str from the environment, or a Python value from
# Django settings) and returns the parsed value or raises ValueError with a reason a person can
# act on.


def _text(raw: Any) -> str:
    return str(raw).strip()


_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(raw: Any) -> bool:
    """Parse a yes/no word; any word not listed (``ture``) is an error, never a silent False."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS or text == "":
        return False
    raise ValueError(
        f"expected true or false ({', '.join(_TRUE_WORDS)} / {', '.join(_FALSE_WORDS)}), "
        f"got {raw!r}"
    )


def _number(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def _positive(raw: Any) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    return value


def _non_negative(raw: Any) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError(f"must be 0 or more, got {raw!r}")
    return value


def _fraction(raw: Any) -> float:
    value = _number(raw)
    if not 0 < value <= 1:
        raise ValueError(f"must be in (0, 1], got {raw!r}")
    return value


def _margin(raw: Any) -> float:
    value = _number(raw)
    if not 0 <= value < 1:
        raise ValueError(f"must be in [0, 1), got {raw!r}")
    return value


def _count(raw: Any) -> int:
    text = str(raw).strip()
    if not re.fullmatch(r"\d+", text):
        raise ValueError(f"expected a whole number, got {raw!r}")
    return int(text)


def _positive_count(raw: Any) -> int:
    value = _count(raw)
    if value < 1:
        raise ValueError(f"must be at least 1, got {raw!r}")
    return value


_RATE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_bits_per_second(raw: Any) -> int:
    """Parse a link capacity such as ``10M``, ``1G``, ``2.5G`` or ``100000000`` (bits/s)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:bit/s|bps|b)?\s*", str(raw))
    if not match:
        raise ValueError(f"expected bits per second such as 10M or 1G, got {raw!r}")
    value = float(match.group(1)) * _RATE_UNITS[match.group(2).upper()]
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    return int(value)


def _optional_capacity(raw: Any) -> int | None:
    return None if str(raw).strip() == "" else parse_bits_per_second(raw)


def _optional_count(raw: Any) -> int | None:
    return None if str(raw).strip() == "" else _positive_count(raw)


def _networks(raw: Any) -> tuple[IPv4Network | IPv6Network, ...]:
    networks = []
    for item in parse_names(raw):
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _optional_port(raw: Any) -> int | None:
    if str(raw).strip() == "":
        return None
    value = _count(raw)
    if not 1 <= value <= 65535:
        raise ValueError(f"expected a TCP port 1-65535, got {raw!r}")
    return value


def parse_names(raw: Any) -> tuple[str, ...]:
    """Parse a comma-separated list (or a list) into its non-empty, stripped items."""
    if isinstance(raw, (list, tuple)):
        items = [str(item).strip() for item in raw]
    else:
        items = [item.strip() for item in str(raw).split(",")]
    return tuple(item for item in items if item)


def _log_level(raw: Any) -> str:
    text = str(raw).strip().upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return text


LOG_FORMATS = ("text", "json")  # timer.config.logs builds a formatter for each


def _log_format(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in LOG_FORMATS:
        raise ValueError(f"expected {' or '.join(LOG_FORMATS)}, got {raw!r}")
    return text


_NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _node_name(raw: Any) -> str:
    text = str(raw).strip()
    if text and not _NODE_NAME.fullmatch(text):
        raise ValueError(
            f"use 1-63 lowercase letters, digits and '-', starting with a letter or digit; got {raw!r}"
        )
    return text


def _redis_url(raw: Any) -> str:
    text = str(raw).strip()
    if text and not re.match(r"^(redis|rediss|unix)://", text):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its name, default (a raw value, parsed like any other) and parser."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "WSTIME_NODE_NAME",
        "",
        _node_name,
        "Name of this node; empty picks two random words at start, like slimy-cardinal.",
    ),
    Setting("WSTIME_TICK_INTERVAL", "1", _positive, "Seconds between two frames on a connection."),
    Setting(
        "WSTIME_MAX_CLIENT_FRAME",
        "1024",
        _positive_count,
        "Largest message (bytes) a client may send, whole or in fragments; a larger one "
        "closes with 1009 before it is buffered.",
    ),
    Setting(
        "WSTIME_REQUIRE_ORIGIN",
        "false",
        parse_bool,
        "Refuse WebSocket handshakes that carry no Origin header (browsers always send one).",
    ),
    Setting(
        "WSTIME_REDIS_URL",
        "",
        _redis_url,
        "Redis for the channel layer and the sessions; empty runs one node in memory.",
    ),
    Setting(
        "WSTIME_REDIS_POOL_SIZE",
        "50",
        _positive_count,
        "Most connections this process opens to Redis for session state.",
    ),
    Setting(
        "WSTIME_GC_FULL_EVERY",
        "10",
        _non_negative,
        "Seconds between two full garbage collections at least, run by the node when old "
        "objects grew by a quarter (then only new objects are traversed) or a quarter of "
        "the connections closed; 0 leaves them to CPython.",
    ),
    Setting(
        "WSTIME_SESSION_TTL",
        "600",
        _positive,
        "Seconds a session outlives its last connection before it is forgotten.",
    ),
    Setting(
        "WSTIME_STATIC_MAX_AGE",
        "3600",
        _count,
        "Cache-Control max-age, in seconds, of static files asked for by their unhashed names "
        "(hashed names: a year, immutable).",
    ),
    Setting(
        "WSTIME_DATA_DIR",
        "var",
        _text,
        "Folder (relative to the checkout, or absolute) for the embedded SQLite database.",
    ),
    Setting(
        "WSTIME_LOG_LEVEL",
        "INFO",
        _log_level,
        "Level of the node's log: DEBUG, INFO, WARNING or ERROR.",
    ),
    Setting(
        "WSTIME_LOG_FORMAT",
        "text",
        _log_format,
        "Log lines as plain text, or json: one object per line with node, client and event "
        "as fields.",
    ),
    # Health check (the capacity signal for the load balancer).
    Setting(
        "WSTIME_HEALTH_THRESHOLD",
        "0.6",
        _fraction,
        "Network usage (0-1] at or above which /healthcheck answers 503.",
    ),
    Setting(
        "WSTIME_HEALTH_RECOVERY_MARGIN",
        "0.05",
        _margin,
        "A full node answers 200 again only below threshold minus this margin.",
    ),
    Setting(
        "WSTIME_NET_WINDOW",
        "10",
        _positive,
        "Seconds of network usage averaged for the health decision.",
    ),
    Setting(
        "WSTIME_SAMPLE_INTERVAL",
        "1",
        _positive,
        "Seconds between two readings of the network counters.",
    ),
    Setting(
        "WSTIME_NET_INTERFACES",
        "",
        parse_names,
        "Comma-separated interfaces to measure; empty measures every up interface but lo.",
    ),
    Setting(
        "WSTIME_LINK_CAPACITY",
        "",
        _optional_capacity,
        "Link capacity in bits/s (10M, 1G) when the NIC reports speed 0; overrides nothing else.",
    ),
    Setting(
        "WSTIME_MAX_CONNECTIONS",
        "",
        _optional_count,
        "Open WebSocket connections at which the node reports itself full; empty: no limit.",
    ),
    # Drain (SIGTERM, admin, manage.py drain) and overload.
    Setting(
        "WSTIME_DRAIN_NOTICE",
        "3",
        _non_negative,
        "Seconds a draining node keeps serving before closing, so the load balancer notices "
        "(HAProxy inter 1s x fall 2, plus one interval).",
    ),
    Setting(
        "WSTIME_DRAIN_WINDOW",
        "10",
        _positive,
        "Seconds over which a draining node spreads the closes of its connections.",
    ),
    Setting(
        "WSTIME_DRAIN_DEADLINE",
        "25",
        _positive,
        "Seconds after SIGTERM by which the process has exited (inside a 30 s grace period).",
    ),
    Setting(
        "WSTIME_CONNECTION_CAP",
        "",
        _optional_count,
        "Open WebSocket connections past which handshakes get 503 + Retry-After; empty: none. "
        "Keep it above WSTIME_MAX_CONNECTIONS so the health check says full first.",
    ),
    Setting(
        "WSTIME_RETRY_AFTER",
        "5",
        _positive_count,
        "Seconds in the Retry-After of a refused handshake (node full or draining).",
    ),
    Setting(
        "WSTIME_RECONNECT_HINT_MAX",
        "2000",
        _count,
        "Largest reconnect hint (ms) put in a drain, shed or rebalance close; each is random "
        "up to it.",
    ),
    Setting(
        "WSTIME_SHED_ENABLED",
        "true",
        parse_bool,
        "Close a few connections (1013) while usage stays above WSTIME_SHED_LEVEL.",
    ),
    Setting(
        "WSTIME_SHED_LEVEL",
        "0.85",
        _fraction,
        "Network usage (window average) above which the node sheds connections.",
    ),
    Setting(
        "WSTIME_SHED_FRACTION",
        "0.01",
        _fraction,
        "Most of a node's connections shed per second (at least one while shedding).",
    ),
    # Rebalancing onto new capacity (a node joins or returns from a drain).
    Setting(
        "WSTIME_REBALANCE_ENABLED",
        "true",
        parse_bool,
        "Move connections (1012 + hint) off a node holding clearly more than its share of "
        "the cluster; needs WSTIME_REDIS_URL.",
    ),
    Setting(
        "WSTIME_REBALANCE_TOLERANCE",
        "0.05",
        _margin,
        "Fraction above its share (at least 2 connections) a node may hold before it moves "
        "connections.",
    ),
    Setting(
        "WSTIME_REBALANCE_RATE",
        "0.02",
        _fraction,
        "Most of a node's connections moved per second while rebalancing.",
    ),
    Setting(
        "WSTIME_REBALANCE_SETTLE",
        "3",
        _non_negative,
        "Seconds a node must accept connections before others move theirs to it "
        "(the load balancer's rise time).",
    ),
    Setting(
        "WSTIME_REBALANCE_MEMORY",
        "600",
        _positive,
        "Seconds during which a moved client is not moved again by the same node.",
    ),
    Setting(
        "WSTIME_AGENT_PORT",
        "",
        _optional_port,
        "TCP port of the HAProxy agent-check responder (weight from spare capacity); "
        "empty: no agent.",
    ),
    Setting(
        "WSTIME_AGENT_BIND", "127.0.0.1", _text, "Address the agent-check responder listens on."
    ),
    Setting(
        "WSTIME_METRICS_TOKEN",
        "",
        _text,
        "Bearer token that opens /metrics from any address; empty: only the allowlist.",
    ),
    Setting(
        "WSTIME_METRICS_ALLOW",
        "127.0.0.0/8,::1",
        _networks,
        "Comma-separated addresses or CIDR networks that may read /metrics without a token.",
    ),
    Setting(
        "WSTIME_TRUSTED_PROXIES",
        "",
        _networks,
        "Comma-separated addresses or CIDR networks of load balancers whose X-Forwarded-For "
        "a node believes; empty: none, the peer's own address counts.",
    ),
    Setting(
        "WSTIME_HEADER_TIMEOUT",
        "10",
        _positive,
        "Seconds a client has to send a request's headers, from connecting or from the end of "
        "its previous request, before the node closes the connection.",
    ),
    Setting(
        "WSTIME_POLICY_CACHE_SECONDS",
        "2",
        _positive,
        "How long a node keeps the health policy from the database before reading it again.",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Parsed ``WSTIME_*`` settings for this process: one field per entry of :data:`SETTINGS`.

    The fields carry types only; every default is written once, in :data:`SETTINGS`, and
    :func:`check_config_class` (run at import) keeps the two in step.
    """

    node_name: str
    tick_interval: float
    max_client_frame: int
    require_origin: bool
    redis_url: str
    redis_pool_size: int
    gc_full_every: float
    session_ttl: float
    static_max_age: int
    data_dir: str
    log_level: str
    log_format: str
    health_threshold: float
    health_recovery_margin: float
    net_window: float
    sample_interval: float
    net_interfaces: tuple[str, ...]
    link_capacity: int | None
    max_connections: int | None
    drain_notice: float
    drain_window: float
    drain_deadline: float
    connection_cap: int | None
    retry_after: int
    reconnect_hint_max: int
    shed_enabled: bool
    shed_level: float
    shed_fraction: float
    rebalance_enabled: bool
    rebalance_tolerance: float
    rebalance_rate: float
    rebalance_settle: float
    rebalance_memory: float
    agent_port: int | None
    agent_bind: str
    metrics_token: str = field(repr=False)
    metrics_allow: tuple[IPv4Network | IPv6Network, ...]
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    header_timeout: float
    policy_cache_seconds: float


def _field_name(setting_name: str) -> str:
    return setting_name.removeprefix("WSTIME_").lower()


def check_config_class(settings: tuple[Setting, ...], config_class: type) -> None:
    """Raise ImproperlyConfigured unless ``config_class`` has one field per setting, no more.

    A plain ``if``, not an ``assert``: ``python -O`` must not turn the check off.
    """
    wanted = [_field_name(setting.name) for setting in settings]
    declared = [f.name for f in fields(config_class)]
    if wanted != declared:
        missing = sorted(set(wanted) - set(declared))
        extra = sorted(set(declared) - set(wanted))
        raise ImproperlyConfigured(
            f"{config_class.__name__} does not match the settings table: missing fields "
            f"{missing}, fields without a setting {extra}"
            + ("" if missing or extra else ", or the order differs")
        )
    with_default = [
        f.name
        for f in fields(config_class)
        if f.default is not MISSING or f.default_factory is not MISSING
    ]
    if with_default:
        raise ImproperlyConfigured(
            f"{config_class.__name__} fields {with_default} carry a default; write it in the "
            f"settings table only"
        )


check_config_class(SETTINGS, Config)


def raw_value(name: str, environ: Mapping[str, str], django_settings: Any) -> Any:
    """Return the unparsed value of ``name``: environment, then Django settings, then default."""
    if name in environ:
        return environ[name]
    return getattr(django_settings, name, _BY_NAME[name].default)


def start_value(name: str, environ: Mapping[str, str]) -> Any:
    """Return the parsed value of ``name`` for ``wstime/settings.py``, before Django is set up.

    Only the environment and the default are seen (Django's settings are being built). A value
    that does not parse gives the default here, so that start-up goes on far enough for the
    system check to report it as ``timer.E001`` with every other broken setting.
    """
    setting = _BY_NAME[name]
    try:
        return setting.parse(raw_value(name, environ, None))
    except ValueError:
        return setting.parse(setting.default)


def environ_value(
    environ: Mapping[str, str], name: str, parse: Callable[[Any], Any], default: Any
) -> Any:
    """Parse the environment variable ``name`` (or ``default``) with one of this module's parsers.

    For Django's own ``DJANGO_*`` variables, read while the settings module is imported: no
    system check can run without settings, so a bad value stops start-up here, naming the
    variable and what it accepts.
    """
    raw = environ.get(name, default)
    try:
        return parse(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


_CROSS_CHECKS: tuple[tuple[Callable[[dict[str, Any]], bool], str, str], ...] = (
    (
        lambda v: v["health_recovery_margin"] >= v["health_threshold"],
        "WSTIME_HEALTH_RECOVERY_MARGIN",
        "must be smaller than WSTIME_HEALTH_THRESHOLD, or a full node would never recover",
    ),
    (
        lambda v: v["drain_notice"] + v["drain_window"] >= v["drain_deadline"],
        "WSTIME_DRAIN_DEADLINE",
        "must exceed WSTIME_DRAIN_NOTICE + WSTIME_DRAIN_WINDOW, or a drain cannot finish",
    ),
    (
        lambda v: v["shed_level"] <= v["health_threshold"],
        "WSTIME_SHED_LEVEL",
        "must be above WSTIME_HEALTH_THRESHOLD: shedding is for a node already refusing new "
        "connections",
    ),
)


def load_config(environ: Mapping[str, str], django_settings: Any) -> Config:
    """Parse every setting; raise :class:`ConfigError` listing every one that is wrong."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for setting in SETTINGS:
        try:
            values[_field_name(setting.name)] = setting.parse(
                raw_value(setting.name, environ, django_settings)
            )
        except ValueError as exc:
            problems.append((setting.name, str(exc)))
    if not problems:  # the settings that must agree with each other, once each parses
        problems = [(name, why) for broken, name, why in _CROSS_CHECKS if broken(values)]
    if problems:
        raise ConfigError(problems)
    return Config(**values)


_cached: Config | None = None


def config() -> Config:
    """Return this process's parsed settings (cached; tests reset it through override_settings)."""
    global _cached
    if _cached is None:
        from django.conf import settings

        _cached = load_config(os.environ, settings)
    return _cached


@receiver(setting_changed)
def _drop_cache(**_: Any) -> None:
    global _cached
    _cached = None
