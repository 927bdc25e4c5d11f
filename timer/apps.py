from django.apps import AppConfig


class TimerConfig(AppConfig):
    name = "timer"
    verbose_name = "wstime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
