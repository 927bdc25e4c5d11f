"""The endpoints: the WebSocket consumer, the page, /healthcheck, /metrics and the cluster page."""
