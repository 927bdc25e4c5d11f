"""Settings parsing (timer.config.loader) and the system checks that report broken settings."""

import os
import re
import subprocess
import sys
from dataclasses import MISSING, fields
from ipaddress import ip_network
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from timer.config import checks
from timer.config.loader import (
    SETTINGS,
    Config,
    ConfigError,
    environ_value,
    load_config,
    parse_bits_per_second,
    parse_bool,
)


def test_load_config__defaults_without_any_configuration():
    """No environment and no Django settings: every default parses."""
    cfg = load_config({}, SimpleNamespace())
    assert cfg.tick_interval == 1.0
    assert cfg.health_threshold == 0.6
    assert cfg.redis_url == ""
    assert cfg.max_connections is None


def test_load_config__environment_wins_over_django_settings():
    """Environment first, then Django settings, then the default."""
    cfg = load_config(
        {"WSTIME_TICK_INTERVAL": "0.25"},
        SimpleNamespace(WSTIME_TICK_INTERVAL=2, WSTIME_SESSION_TTL=30),
    )
    assert cfg.tick_interval == 0.25
    assert cfg.session_ttl == 30


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("WSTIME_TICK_INTERVAL", "abc", "expected a number"),
        ("WSTIME_TICK_INTERVAL", "0", "greater than 0"),
        ("WSTIME_TICK_INTERVAL", "nan", "finite"),
        ("WSTIME_HEALTH_THRESHOLD", "1.5", "(0, 1]"),
        ("WSTIME_REDIS_URL", "http://x", "redis://"),
        ("WSTIME_LINK_CAPACITY", "fast", "bits per second"),
        ("WSTIME_MAX_CONNECTIONS", "-3", "whole number"),
        ("WSTIME_NODE_NAME", "Bad Name", "lowercase"),
        ("WSTIME_REQUIRE_ORIGIN", "maybe", "true or false"),
        ("WSTIME_LOG_LEVEL", "loud", "DEBUG"),
    ],
)
def test_load_config__rejects_with_a_reason(name, value, reason):
    """Each broken value names the setting and says what is expected."""
    with pytest.raises(ConfigError) as caught:
        load_config({name: value}, SimpleNamespace())
    assert caught.value.problems[0][0] == name
    assert reason in caught.value.problems[0][1]


def test_load_config__margin_must_stay_below_threshold():
    """A recovery level at or below zero would never let a full node back in."""
    with pytest.raises(ConfigError, match="WSTIME_HEALTH_RECOVERY_MARGIN"):
        load_config(
            {"WSTIME_HEALTH_THRESHOLD": "0.1", "WSTIME_HEALTH_RECOVERY_MARGIN": "0.2"},
            SimpleNamespace(),
        )


@pytest.mark.parametrize(
    "text, bits",
    [
        ("10M", 10_000_000),
        ("1G", 1_000_000_000),
        ("2.5G", 2_500_000_000),
        ("100000", 100_000),
        ("100k", 100_000),
        ("1Gbps", 1_000_000_000),
    ],
)
def test_parse_bits_per_second__units(text, bits):
    """Capacities accept plain bits/s and K, M, G, T suffixes."""
    assert parse_bits_per_second(text) == bits


def test_settings__every_setting_has_help():
    """The catalogue documents every setting (the README table is written from it)."""
    assert all(setting.help for setting in SETTINGS)


def test_check_wstime_settings__reports_each_broken_setting(monkeypatch):
    """timer.E001 per broken setting, with a hint."""
    monkeypatch.setenv("WSTIME_TICK_INTERVAL", "soon")
    monkeypatch.setenv("WSTIME_SESSION_TTL", "-1")
    errors = checks.check_wstime_settings()
    assert {e.id for e in errors} == {"timer.E001"}
    assert {e.msg.split()[0] for e in errors} == {"WSTIME_TICK_INTERVAL", "WSTIME_SESSION_TTL"}


def test_check_wstime_settings__silent_when_all_is_well():
    """No error for the defaults."""
    assert checks.check_wstime_settings() == []


def test_check_production_safety__missing_secret_key(settings):
    """DEBUG off with the throwaway key is timer.E002, and the hint says how to make one."""
    settings.DEBUG = False
    settings.WSTIME_SECRET_KEY_IS_EPHEMERAL = True
    errors = checks.check_production_safety()
    assert [e.id for e in errors] == ["timer.E002"]
    assert "DJANGO_SECRET_KEY" in errors[0].hint


def test_check_production_safety__wildcard_hosts(settings):
    """DEBUG off with ALLOWED_HOSTS=* is timer.E003."""
    settings.DEBUG = False
    settings.WSTIME_SECRET_KEY_IS_EPHEMERAL = False
    settings.ALLOWED_HOSTS = ["*"]
    assert [e.id for e in checks.check_production_safety()] == ["timer.E003"]


def test_check_production_safety__debug_on_is_a_development_machine(settings):
    """With DEBUG on neither is reported."""
    settings.DEBUG = True
    settings.WSTIME_SECRET_KEY_IS_EPHEMERAL = True
    settings.ALLOWED_HOSTS = ["*"]
    assert checks.check_production_safety() == []


def test_check_production_safety__configured_node_passes(settings):
    """A real key and explicit hosts: no error."""
    settings.DEBUG = False
    settings.WSTIME_SECRET_KEY_IS_EPHEMERAL = False
    settings.SECRET_KEY = "x" * 50
    settings.ALLOWED_HOSTS = ["time.example.com"]
    assert checks.check_production_safety() == []


def test_readme__documents_every_setting():
    """The README's settings table names every WSTIME_* setting with its default."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"| `{s.name}` |" not in readme]
    assert missing == []


@pytest.mark.parametrize(
    "environ, name",
    [
        ({"WSTIME_DRAIN_NOTICE": "10", "WSTIME_DRAIN_WINDOW": "20"}, "WSTIME_DRAIN_DEADLINE"),
        ({"WSTIME_SHED_LEVEL": "0.5"}, "WSTIME_SHED_LEVEL"),
    ],
)
def test_load_config__settings_that_must_agree(environ, name):
    """A drain that cannot finish in time, or shedding below the health threshold, is refused."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ, SimpleNamespace())
    assert [problem[0] for problem in caught.value.problems] == [name]


# --- one source of truth per setting ---------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _manage_check(**environ: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WSTIME_", "DJANGO_"))
    }
    env.update(environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manage_check__unknown_boolean_word_is_refused_at_start():
    """DJANGO_DEBUG=ture stops start-up with an error naming the variable and the accepted words."""
    result = _manage_check(DJANGO_DEBUG="ture")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert "DJANGO_DEBUG" in last_line and "'ture'" in last_line
    assert "true" in last_line and "false" in last_line and "yes" in last_line


def test_manage_check__broken_wstime_value_is_timer_e001():
    """A bad WSTIME_* value read by the settings module still reaches the system check."""
    result = _manage_check(WSTIME_LOG_LEVEL="loud", DJANGO_DEBUG="yes")
    assert result.returncode != 0
    assert "timer.E001" in result.stderr and "WSTIME_LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "word, value",
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_parse_bool__accepted_words(word, value):
    """The words every boolean setting accepts, DJANGO_* and WSTIME_* alike."""
    assert parse_bool(word) is value


def test_environ_value__unknown_word_names_the_variable():
    """An unparsable DJANGO_* value is ImproperlyConfigured naming the variable and its value."""
    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_DEBUG: .*1, true, yes, on.*'ture'"):
        environ_value({"DJANGO_DEBUG": "ture"}, "DJANGO_DEBUG", parse_bool, "false")
    assert environ_value({}, "DJANGO_DEBUG", parse_bool, "false") is False


def test_config__declares_no_default_of_its_own():
    """Defaults live in SETTINGS only: a Config field with a default would be a second copy."""
    assert [
        f.name
        for f in fields(Config)
        if f.default is not MISSING or f.default_factory is not MISSING
    ] == []


def test_config__defaults_come_from_the_table():
    """metrics_allow defaults to loopback, as the table and the README say."""
    cfg = load_config({}, SimpleNamespace())
    assert cfg.metrics_allow == (ip_network("127.0.0.0/8"), ip_network("::1"))


def test_check_config_class__mismatch_is_an_error_under_python_O():
    """Table and Config are compared by a real check, which python -O does not strip."""
    code = (
        "import dataclasses\n"
        "from timer.config.loader import SETTINGS, Config, check_config_class\n"
        "check_config_class(SETTINGS, Config)\n"  # the real pair agrees
        "Extra = dataclasses.make_dataclass('Extra', [('surplus', int)], bases=(Config,),\n"
        "                                   frozen=True)\n"
        "try:\n"
        "    check_config_class(SETTINGS, Extra)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", code],
        cwd=REPO,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImproperlyConfigured")
    assert "surplus" in result.stdout


def _readme_defaults() -> dict[str, str]:
    rows = re.findall(
        r"^\| `(WSTIME_[A-Z_]+)` \| ([^|]*) \|", (REPO / "README.md").read_text(), re.MULTILINE
    )
    return {
        name: "" if cell.strip() == "*(empty)*" else cell.strip().strip("`") for name, cell in rows
    }


def test_readme__defaults_match_the_table():
    """Each README default is the table's default, character for character."""
    readme = _readme_defaults()
    assert {s.name: readme.get(s.name) for s in SETTINGS} == {s.name: s.default for s in SETTINGS}


@pytest.mark.parametrize(
    ("max_connections", "hard_limit", "warned"),
    [("20000", 20000, True), ("19488", 20000, False), ("", 20000, False), ("20000", None, False)],
)
def test_open_file_problems__capacity_past_the_limits_room_is_timer_w001(
    settings, max_connections, hard_limit, warned
):
    """WSTIME_MAX_CONNECTIONS past the open-file limit less 512 warns: handshakes would get
    503 before the health check says full."""
    cfg = load_config({"WSTIME_MAX_CONNECTIONS": max_connections}, settings)
    problems = checks.open_file_problems(cfg, hard_limit)
    assert [p.id for p in problems] == (["timer.W001"] if warned else [])
    if warned:
        assert "room for 19488 connections" in problems[0].msg


def test_check_open_files__silent_with_the_defaults():
    assert checks.check_open_files() == []
