"""The process's health monitor: one per process, fed by the sampler, read by the view."""

from __future__ import annotations

from ..config.loader import Config, config
from ..core.health_policy import SOURCE_SETTINGS, Policy
from .monitor import HealthMonitor


def settings_policy(cfg: Config) -> Policy:
    """Return the policy the ``WSTIME_*`` settings describe (used until a policy row exists)."""
    return Policy(
        threshold=cfg.health_threshold,
        recovery_margin=cfg.health_recovery_margin,
        window=cfg.net_window,
        capacity=None,  # WSTIME_LINK_CAPACITY only stands in for a missing link speed
        max_connections=cfg.max_connections,
        draining=False,
        source=SOURCE_SETTINGS,
    )


_monitor: HealthMonitor | None = None


def get_monitor() -> HealthMonitor:
    """Return this process's monitor, creating it from the settings on first call."""
    global _monitor
    if _monitor is None:
        cfg = config()
        _monitor = HealthMonitor(settings_policy(cfg), sample_interval=cfg.sample_interval)
    return _monitor


def install_monitor(monitor: HealthMonitor | None) -> None:
    """Make ``monitor`` the process's monitor (tests install one with a fake clock); None resets."""
    global _monitor
    _monitor = monitor
