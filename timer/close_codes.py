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
