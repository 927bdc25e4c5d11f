"""WebSocket close codes a wstime node sends, and what a client should do on each.

The README's "Close codes" table repeats these; keep the two in step.
"""

# The client sent a frame larger than WSTIME_MAX_CLIENT_FRAME (RFC 6455: Message Too Big).
# Reconnecting is fine; sending the same frame again is not.
CLOSE_MESSAGE_TOO_BIG = 1009

# Another connection with the same client id took the session over, on this node or another.
# The client must not reconnect: the session lives on in the newer connection.
CLOSE_SESSION_TAKEN_OVER = 4001

# The node is leaving (SIGTERM, or drained from admin), or moves the connection to a node with
# more room (rebalancing). The reason carries a reconnect hint,
# "... reconnect in <ms> ms": reconnect after that delay, through the load balancer.
CLOSE_SERVICE_RESTART = 1012

# The node sheds load because it is overloaded. Same hint as 1012; reconnect after it.
CLOSE_TRY_AGAIN_LATER = 1013

# A frame could not be sent for a reason other than the client leaving: a fault on the node.
# Reconnect with backoff; the session resumes on this node or another.
CLOSE_INTERNAL_ERROR = 1011

# Never sent: recorded (metrics, logs) for a client's close frame that carried no status code,
# what a browser sends for a plain ``ws.close()`` (RFC 6455 §7.1.5, "no status received").
CLOSE_NO_STATUS_RECEIVED = 1005

# Never sent: recorded for a connection that ended without any close frame (RFC 6455 §7.1.5),
# or whose handler ended without hearing of its disconnect.
CLOSE_ABNORMAL = 1006

# Codes counted one by one in /metrics: RFC 6455's registered codes and the node's own. Any
# other (3000-4999, which a client may pick freely) is counted as "other", so a client cannot
# grow the metric's label set.
COUNTED_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, *range(1005, 1016), CLOSE_SESSION_TAKEN_OVER}
)
OTHER_CLOSE_CODES = "other"


def close_code_label(code: int | None) -> str:
    """The metric label of a close code: the code itself if counted, else "other"."""
    if code is None:
        code = CLOSE_NO_STATUS_RECEIVED
    return str(code) if code in COUNTED_CLOSE_CODES else OTHER_CLOSE_CODES
