"""System checks: settings that would make a node misbehave, each with how to fix it.

The server patches have theirs in :mod:`timer.server.checks`.
"""

from __future__ import annotations

import os
import resource

from django.conf import settings
from django.core.checks import Error, Warning, register

from ..core.open_files import RESERVE, connection_limit
from .loader import Config, ConfigError, load_config


@register()
def check_wstime_settings(app_configs=None, **kwargs) -> list[Error]:
    """Every WSTIME_* setting parses and is in range (timer.E001)."""
    try:
        load_config(os.environ, settings)
    except ConfigError as exc:
        return [
            Error(
                f"{name} is invalid: {why}.",
                hint=f"Fix or unset {name}; the README lists every setting with its default.",
                id="timer.E001",
            )
            for name, why in exc.problems
        ]
    return []


@register()
def check_production_safety(app_configs=None, **kwargs) -> list[Error]:
    """With DEBUG off, a real SECRET_KEY (timer.E002) and explicit ALLOWED_HOSTS (timer.E003)."""
    if settings.DEBUG:
        return []
    errors = []
    if getattr(settings, "WSTIME_SECRET_KEY_IS_EPHEMERAL", False) or not settings.SECRET_KEY:
        errors.append(
            Error(
                "DJANGO_SECRET_KEY is not set, so this process signs sessions with a throwaway key "
                "that dies with it and differs from the other nodes'.",
                hint="Set DJANGO_SECRET_KEY to the same long random value on every node, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="timer.E002",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS contains '*', which lets any Host header and any browser Origin in.",
                hint="Set DJANGO_ALLOWED_HOSTS to the comma-separated host names clients use, "
                "e.g. DJANGO_ALLOWED_HOSTS=time.example.com,localhost.",
                id="timer.E003",
            )
        )
    return errors


def open_file_problems(cfg: Config, hard_limit: int | None) -> list[Warning]:
    """WSTIME_MAX_CONNECTIONS above what the hard open-file limit leaves room for (W001)."""
    room = connection_limit(hard_limit)
    if cfg.max_connections is None or room is None or cfg.max_connections <= room:
        return []
    return [
        Warning(
            f"WSTIME_MAX_CONNECTIONS is {cfg.max_connections}, but the open-file limit "
            f"({hard_limit}) leaves room for {room} connections ({RESERVE} descriptors kept "
            "for the rest): handshakes would get 503 before /healthcheck says full.",
            hint="Raise the limit (LimitNOFILE= in systemd, ulimit -n) or lower "
            "WSTIME_MAX_CONNECTIONS.",
            id="timer.W001",
        )
    ]


@register()
def check_open_files(app_configs=None, **kwargs) -> list[Warning]:
    """The open-file limit leaves room for WSTIME_MAX_CONNECTIONS (timer.W001)."""
    try:
        cfg = load_config(os.environ, settings)
    except ConfigError:
        return []  # timer.E001 reports it
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return open_file_problems(cfg, None if hard == resource.RLIM_INFINITY else hard)
