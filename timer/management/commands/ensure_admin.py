"""``manage.py ensure_admin``: create the admin user on a fresh install; do nothing if it exists.

Django's ``createsuperuser --noinput`` does the creating (it reads the password from
``DJANGO_SUPERUSER_PASSWORD``); this command only makes it safe to run on every deploy.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

PASSWORD_VARIABLE = "DJANGO_SUPERUSER_PASSWORD"


class Command(BaseCommand):
    help = (
        "Create a superuser for Django admin unless one with that name exists. The password "
        f"comes from {PASSWORD_VARIABLE}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--username", default=os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        )
        parser.add_argument("--email", default=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""))

    def handle(self, *args: Any, username: str, email: str, **options: Any) -> None:
        users = get_user_model()._default_manager
        if users.filter(**{get_user_model().USERNAME_FIELD: username}).exists():
            self.stdout.write(f"User {username!r} exists; left as it is.")
            return
        if not os.environ.get(PASSWORD_VARIABLE):
            raise CommandError(
                f"Set {PASSWORD_VARIABLE} to the password for {username!r} "
                "(it is read from the environment, never from the command line)."
            )
        call_command(
            "createsuperuser", interactive=False, username=username, email=email, verbosity=0
        )
        self.stdout.write(f"Created superuser {username!r}.")
