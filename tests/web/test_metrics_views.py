"""/metrics: content negotiation between Prometheus' text format and OpenMetrics."""

from __future__ import annotations

import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


async def test_metrics__text_format_by_default(node):
    """A scraper that asks for nothing in particular gets the text format, 0.0.4."""
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    body = response.content.decode()
    assert "wstime_open_connections{" in body
    assert "# EOF" not in body


async def test_metrics__openmetrics_when_accepted(node):
    """Prometheus' Accept header gets OpenMetrics: its content type, _total counters, # EOF."""
    response = await AsyncClient().get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert "Accept" in response["Vary"]
    body = response.content.decode()
    assert body.endswith("# EOF\n")
    assert "# TYPE wstime_takeovers counter" in body
    assert "wstime_takeovers_total{" in body


async def test_metrics__event_loop_lag_histogram(node):
    """The node's own event-loop lag is a histogram with buckets, a sum and a count."""
    body = (await AsyncClient().get("/metrics")).content.decode()
    assert "# TYPE wstime_event_loop_lag_seconds histogram" in body
    assert 'wstime_event_loop_lag_seconds_bucket{le="0.25",node=' in body
    assert "wstime_event_loop_lag_seconds_count{" in body
