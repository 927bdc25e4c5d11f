"""Settings: every ``WSTIME_*`` value read and validated in one place, with its system checks."""
