"""Settings parsing (timer.conf) and the system checks that report broken settings."""

from types import SimpleNamespace

import pytest

from timer import checks
from timer.conf import SETTINGS, ConfigError, load_config, parse_bits_per_second


def test_load_config__defaults_without_any_configuration():
    """No environment and no Django settings: every default parses."""
    cfg = load_config({}, SimpleNamespace())
    assert cfg.tick_interval == 1.0
    assert cfg.health_threshold == 0.6
    assert cfg.redis_url == ""
    assert cfg.max_connections is None


def test_load_config__environment_wins_over_django_settings():
    """Environment first, then Django settings, then the default."""
    cfg = load_config({"WSTIME_TICK_INTERVAL": "0.25"}, SimpleNamespace(WSTIME_TICK_INTERVAL=2,
                                                                         WSTIME_SESSION_TTL=30))
    assert cfg.tick_interval == 0.25
    assert cfg.session_ttl == 30


@pytest.mark.parametrize("name, value, reason", [
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
])
def test_load_config__rejects_with_a_reason(name, value, reason):
    """Each broken value names the setting and says what is expected."""
    with pytest.raises(ConfigError) as caught:
        load_config({name: value}, SimpleNamespace())
    assert caught.value.problems[0][0] == name
    assert reason in caught.value.problems[0][1]


def test_load_config__margin_must_stay_below_threshold():
    """A recovery level at or below zero would never let a full node back in."""
    with pytest.raises(ConfigError, match="WSTIME_HEALTH_RECOVERY_MARGIN"):
        load_config({"WSTIME_HEALTH_THRESHOLD": "0.1", "WSTIME_HEALTH_RECOVERY_MARGIN": "0.2"},
                    SimpleNamespace())


@pytest.mark.parametrize("text, bits", [
    ("10M", 10_000_000), ("1G", 1_000_000_000), ("2.5G", 2_500_000_000), ("100000", 100_000),
    ("100k", 100_000), ("1Gbps", 1_000_000_000),
])
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

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"| `{s.name}` |" not in readme]
    assert missing == []


@pytest.mark.parametrize("environ, name", [
    ({"WSTIME_DRAIN_NOTICE": "10", "WSTIME_DRAIN_WINDOW": "20"}, "WSTIME_DRAIN_DEADLINE"),
    ({"WSTIME_SHED_LEVEL": "0.5"}, "WSTIME_SHED_LEVEL"),
])
def test_load_config__settings_that_must_agree(environ, name):
    """A drain that cannot finish in time, or shedding below the health threshold, is refused."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ, SimpleNamespace())
    assert [problem[0] for problem in caught.value.problems] == [name]
