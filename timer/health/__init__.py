"""The capacity-aware health check: is there room on this node for new WebSocket connections?

Pure core (imports neither Django nor psutil; time is always an argument):

- :mod:`.rates`: cumulative interface byte counters -> bit rates per sample interval.
- :mod:`.capacity`: which interfaces to measure and how many bits/s they carry.
- :mod:`.window`: the time-weighted moving average of usage over the window.
- :mod:`.policy`: the operator's policy (threshold, margin, window, ...) and its validation.
- :mod:`.decision`: hysteresis and the verdict (ok, overloaded, draining, stale).
- :mod:`.monitor`: the sans-I/O state machine that combines them.

I/O edges: :mod:`.sampler` (asyncio task reading psutil), :mod:`.policy_store` (the policy from
the database, cached per process), :mod:`.runtime` (the process's monitor), :mod:`.checks`.
"""
