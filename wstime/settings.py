"""Django settings for wstime, read from the environment (see the README's settings table).

Django's own settings come from ``DJANGO_*`` variables and ``DATABASE_URL`` here; the
application's ``WSTIME_*`` settings are read and validated in :mod:`timer.config.loader`. Both are parsed
by :mod:`timer.config.loader`'s parsers: a ``DJANGO_*`` value that does not parse (``DJANGO_DEBUG=ture``)
stops start-up with ImproperlyConfigured; a ``WSTIME_*`` one falls back to its default here and
is reported by the system check ``timer.E001``.
"""

import contextlib
import os
import secrets
from pathlib import Path

import dj_database_url

from timer.config.loader import environ_value, parse_bool, parse_names, start_value
from timer.config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
# The page's templates and static files: at the top of a checkout, inside this package in an
# installed wheel (pyproject.toml maps templates/ and static/ there).
_PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = _PACKAGE_DIR if (_PACKAGE_DIR / "templates").is_dir() else BASE_DIR


DEBUG = environ_value(os.environ, "DJANGO_DEBUG", parse_bool, "false")

# An unset key gets a throwaway one so that a bare node starts; the system check timer.E002
# reports it as an error while DEBUG is off, because sessions signed with it die with the process
# and differ between nodes.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
WSTIME_SECRET_KEY_IS_EPHEMERAL = not SECRET_KEY
if not SECRET_KEY:
    SECRET_KEY = "ephemeral-" + secrets.token_urlsafe(48)

ALLOWED_HOSTS = list(
    environ_value(os.environ, "DJANGO_ALLOWED_HOSTS", parse_names, "localhost,127.0.0.1,[::1]")
)
CSRF_TRUSTED_ORIGINS = list(
    environ_value(os.environ, "DJANGO_CSRF_TRUSTED_ORIGINS", parse_names, "")
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "timer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "wstime.urls"
ASGI_APPLICATION = "wstime.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ASSETS_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_DATA_DIR = BASE_DIR / start_value("WSTIME_DATA_DIR", os.environ)
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{_DATA_DIR / 'wstime.sqlite3'}",
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several nodes on one machine share the file: wait for a writer instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Create the database's folder for every entry point (manage.py migrate on a fresh checkout
    # runs before any node has started); a folder that cannot be made is SQLite's error to report.
    with contextlib.suppress(OSError):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The channel layer: in memory for one node, Redis (pub/sub layer) when WSTIME_REDIS_URL is set.
# The Redis layer's options are built in timer.config.layers, next to the reasons for them.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
_REDIS_URL = start_value("WSTIME_REDIS_URL", os.environ)
if _REDIS_URL:
    from timer.config.layers import redis_layer_settings

    CHANNEL_LAYERS = {"default": redis_layer_settings(_REDIS_URL)}

STATIC_URL = "static/"
STATICFILES_DIRS = [ASSETS_DIR / "static"]
STATIC_ROOT = _DATA_DIR / "static"
# Content-hashed names (app.3f2a9c1b0d4e.js) from a manifest that timer.web.static_files builds at
# start; see the README's "Static files".
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if environ_value(os.environ, "DJANGO_TRUST_X_FORWARDED_PROTO", parse_bool, "false")
    else None
)

# Unknown values fall back to the defaults here and are reported by the system check timer.E001.
LOGGING = logging_config(
    level=start_value("WSTIME_LOG_LEVEL", os.environ),
    log_format=start_value("WSTIME_LOG_FORMAT", os.environ),
)
