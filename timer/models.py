"""Database models: the health policy, edited in Django admin."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from .config.loader import config
from .core.health_policy import SOURCE_DEFAULT_ROW, SOURCE_NODE_ROW, Policy, policy_problems

node_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use the node's name as it logs it at start (WSTIME_NODE_NAME): lowercase letters, digits "
    "and '-'.",
)


# Defaults for the admin's "add" form: the settings this process runs with.
def default_threshold() -> float:
    return config().health_threshold


def default_recovery_margin() -> float:
    return config().health_recovery_margin


def default_window() -> float:
    return config().net_window


def default_max_connections() -> int | None:
    return config().max_connections


class HealthPolicy(models.Model):
    """When ``/healthcheck`` says a node is full, for every node (blank node) or for one."""

    node = models.CharField(
        "node",
        max_length=63,
        blank=True,
        unique=True,
        validators=[node_name_validator],
        help_text="Blank: the default policy for every node. A node name: this node's own "
        "policy, replacing the default (except that draining on the default drains "
        "every node).",
    )
    threshold = models.FloatField(
        "threshold",
        default=default_threshold,
        help_text="Network usage (0-1] at or above which the node answers 503. 0.6 = 60 % of "
        "its capacity; the rest is the buffer its existing connections grow into.",
    )
    recovery_margin = models.FloatField(
        "recovery margin",
        default=default_recovery_margin,
        help_text="A full node answers 200 again only below threshold minus this margin.",
    )
    window = models.FloatField(
        "window (seconds)",
        default=default_window,
        help_text="Seconds of network usage averaged (moving average).",
    )
    capacity = models.PositiveBigIntegerField(
        "capacity (bit/s)",
        null=True,
        blank=True,
        help_text="Overrides the link speed and WSTIME_LINK_CAPACITY, e.g. 1000000000 for "
        "1 Gbit/s. Empty: measured link speed.",
    )
    max_connections = models.PositiveIntegerField(
        "max connections",
        null=True,
        blank=True,
        default=default_max_connections,
        help_text="Open WebSocket connections at which the node reports itself full. Empty: no "
        "limit.",
    )
    draining = models.BooleanField(
        "draining",
        default=False,
        help_text="Answer 503 'draining' so the load balancer sends no new connections.",
    )
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "health policy"
        verbose_name_plural = "health policies"
        ordering = ["node"]

    def __str__(self) -> str:
        return f"health policy for {self.node}" if self.node else "default health policy"

    def clean(self) -> None:
        """Reject a policy a node could not apply, naming the field to fix."""
        super().clean()
        if None in (self.threshold, self.recovery_margin, self.window):
            return  # the field itself already reports that it is required
        problems = policy_problems(
            threshold=self.threshold,
            recovery_margin=self.recovery_margin,
            window=self.window,
            capacity=self.capacity,
            max_connections=self.max_connections,
        )
        if problems:
            raise ValidationError(problems)

    def as_policy(self) -> Policy:
        """Return this row as the value the health monitor applies."""
        return Policy(
            threshold=self.threshold,
            recovery_margin=self.recovery_margin,
            window=self.window,
            capacity=self.capacity,
            max_connections=self.max_connections,
            draining=self.draining,
            source=f"{SOURCE_NODE_ROW} {self.node}" if self.node else SOURCE_DEFAULT_ROW,
        )
