"""The Redis channel layer's settings, and why they are what they are."""

from __future__ import annotations

from typing import Any


def redis_layer_settings(url: str) -> dict[str, Any]:
    """Return the CHANNEL_LAYERS entry for a cluster sharing the Redis at ``url``.

    The pub/sub layer: a message to a node's channel is one PUBLISH, delivered by Redis to the
    one process subscribed to it, and nothing is left queued in Redis when a node dies (the
    core layer's lists would keep a dead node's messages until they expire). Nodes only use the
    layer for their own channel (a clock tick per interval, session takeovers), so its lack of
    delivery guarantees costs a late tick, which the local clock covers.

    The layer serialises its commands per shard behind one lock, so it needs two connections
    (one subscribed, one publishing); the pool is capped well above that, and the connect
    timeout keeps an outage from stalling the node.
    """
    return {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [{"address": url, "max_connections": 20, "socket_connect_timeout": 1}],
            "prefix": "wstime",
        },
    }
