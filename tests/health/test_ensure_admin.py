"""``manage.py ensure_admin``: the admin user on a fresh install, idempotent."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
def test_ensure_admin__creates_superuser_from_environment(monkeypatch, capsys):
    """The password comes from DJANGO_SUPERUSER_PASSWORD; the user can log in to admin."""
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct horse battery staple")
    call_command("ensure_admin", "--username", "ops")
    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.is_staff
    assert user.check_password("correct horse battery staple")
    assert "Created superuser 'ops'" in capsys.readouterr().out


@pytest.mark.django_db
def test_ensure_admin__leaves_an_existing_user_alone(monkeypatch, capsys):
    """Running it again (every deploy) changes nothing."""
    get_user_model().objects.create_superuser("admin", "", "old password")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "new password")
    call_command("ensure_admin")
    assert get_user_model().objects.get(username="admin").check_password("old password")
    assert "exists" in capsys.readouterr().out


@pytest.mark.django_db
def test_ensure_admin__refuses_without_password(monkeypatch):
    """Without a password in the environment it says what to set, and creates nothing."""
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD"):
        call_command("ensure_admin")
    assert not get_user_model().objects.exists()
