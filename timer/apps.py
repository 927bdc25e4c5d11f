from django.apps import AppConfig


class TimerConfig(AppConfig):
    name = "timer"
    verbose_name = "wstime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .config import checks  # noqa: F401 - registers the system checks
        from .health import checks as health_checks  # noqa: F401 - registers the health checks
        from .health import policy_store  # noqa: F401 - reloads the policy when it is edited
        from .server import checks as server_checks  # noqa: F401 - registers the patch checks
