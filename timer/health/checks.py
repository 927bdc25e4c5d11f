"""System checks for the health check's view of the network (warnings: the node still runs)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import psutil
from django.conf import settings
from django.core.checks import Warning, register

from ..config.loader import Config, ConfigError, load_config
from .capacity import link_capacity, select_interfaces


def network_problems(cfg: Config, stats: Mapping[str, Any]) -> list[Warning]:
    """Return warnings for interfaces that do not exist (timer.W101) or have no capacity (W102)."""
    warnings = []
    missing = sorted(set(cfg.net_interfaces) - set(stats))
    if missing:
        warnings.append(
            Warning(
                f"WSTIME_NET_INTERFACES names {', '.join(missing)}, which this machine does not have "
                f"(it has {', '.join(sorted(stats)) or 'none'}).",
                hint="Fix the names, or unset WSTIME_NET_INTERFACES to measure every interface "
                "that is up except loopback.",
                id="timer.W101",
            )
        )
    names = select_interfaces(stats, cfg.net_interfaces)
    if link_capacity(stats, names, cfg.link_capacity).bits_per_second is None:
        warnings.append(
            Warning(
                f"The health check cannot tell how full the network is: "
                f"{', '.join(names) or 'no interface'} reports no link speed.",
                hint="Set WSTIME_LINK_CAPACITY (bits/s, e.g. 1G) or a capacity in the health "
                "policy (admin); until then /healthcheck ignores network usage.",
                id="timer.W102",
            )
        )
    return warnings


@register()
def check_health_network(app_configs: object = None, **kwargs: object) -> list[Warning]:
    """The measured interfaces exist (timer.W101) and have a known capacity (timer.W102)."""
    try:
        cfg = load_config(os.environ, settings)
    except ConfigError:
        return []  # timer.E001 reports it
    return network_problems(cfg, psutil.net_if_stats())
