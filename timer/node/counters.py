"""The node's totals since start, read by the health JSON and /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.close_codes import close_code_label


@dataclass
class NodeCounters:
    """Totals since start (never reset), so that scrapers can take rates."""

    sessions_new: int = 0
    sessions_resumed: int = 0
    takeovers: int = 0
    shed: int = 0  # connections closed with 1013 to shed load
    health_unavailable: int = 0  # /healthcheck answers with 503
    refused_handshakes: dict[str, int] = field(default_factory=dict)  # by reason
    # By close_code_label(): a bounded set of labels, whatever codes clients choose.
    closes_by_code: dict[str, int] = field(default_factory=dict)

    def refused(self, reason: str) -> None:
        self.refused_handshakes[reason] = self.refused_handshakes.get(reason, 0) + 1

    def closed(self, code: int | None) -> None:
        label = close_code_label(code)
        self.closes_by_code[label] = self.closes_by_code.get(label, 0) + 1
