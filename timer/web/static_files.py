"""Static files with content-hashed names, built at start and served by the node itself.

The page links ``app.3f2a9c1b0d4e.js`` (Django's ManifestStaticFilesStorage, through
``{% static %}``), so a deploy that changes ``app.js`` changes its URL and no browser keeps an
old copy; a hashed name never changes content, so it is cached for a year as ``immutable``.

:func:`collect_static` runs ``collectstatic`` into ``STATIC_ROOT`` (``<WSTIME_DATA_DIR>/static``)
when the sources differ from the last build, under a file lock so that nodes starting together
on one machine build once. Old hashed files are kept: a page served by a node of the previous
release still finds its script. Unhashed names keep working with the short
``WSTIME_STATIC_MAX_AGE`` cache and If-Modified-Since, for links from outside the page.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from pathlib import Path

import django
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.views.static import serve

from ..config.loader import config

logger = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
# collectstatic's default ignore patterns, so that the fingerprint covers what it copies.
_IGNORE = ["CVS", ".*", "*~"]


def _sources() -> list[tuple[str, Path]]:
    """Every static file the finders see: (relative path, source file), first finder wins."""
    found: dict[str, Path] = {}
    for finder in finders.get_finders():
        for path, storage in finder.list(_IGNORE):
            prefix = getattr(storage, "prefix", None) or ""
            name = f"{prefix}/{path}" if prefix else path
            found.setdefault(name.replace("\\", "/"), Path(storage.path(path)))
    return sorted(found.items())


def sources_fingerprint() -> str:
    """A digest of every static source's name and content, and of the storage that hashes them."""
    digest = hashlib.sha256(f"django {django.__version__}\n".encode())
    digest.update(repr(settings.STORAGES["staticfiles"]).encode())
    for name, path in _sources():
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def collect_static() -> bool:
    """Build STATIC_ROOT and its manifest unless it matches the sources; True if it built.

    Safe to call from several processes at once (a file lock next to STATIC_ROOT).
    """
    root = Path(settings.STATIC_ROOT)
    root.parent.mkdir(parents=True, exist_ok=True)
    stamp = root.parent / "static.sources"
    fingerprint = sources_fingerprint()
    with open(root.parent / "static.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = False
        manifest = root / staticfiles_storage.manifest_name
        if not (manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint):
            # collectstatic skips a copy that is newer than its source; a rollback can bring
            # an older source with other content, so remove copies that differ first.
            for name, path in _sources():
                copy = root / name
                if copy.exists() and copy.read_bytes() != path.read_bytes():
                    copy.unlink()
            call_command("collectstatic", interactive=False, verbosity=0)
            stamp.write_text(fingerprint)
            built = True
            logger.info("static files collected into %s", root)
    # Another process may have built it: read the manifest this process will render with.
    staticfiles_storage.hashed_files, staticfiles_storage.manifest_hash = (
        staticfiles_storage.load_manifest()
    )
    return built


class CachedStaticFiles(ASGIStaticFilesHandler):
    """Serve STATIC_ROOT: hashed names cached for a year, others for WSTIME_STATIC_MAX_AGE.

    Answers If-Modified-Since with 304 (Django's ``serve``).
    """

    def serve(self, request: HttpRequest) -> HttpResponseBase:
        name = self.file_path(request.path).replace("\\", "/").lstrip("/")
        response = serve(request, name, document_root=settings.STATIC_ROOT)
        if response.status_code in (200, 304):
            response["Cache-Control"] = (
                IMMUTABLE
                if name in _hashed_names()
                else f"public, max-age={config().static_max_age}"
            )
        if isinstance(response, FileResponse):
            response["X-Content-Type-Options"] = "nosniff"
        return response


def _hashed_names() -> frozenset[str]:
    """The manifest's hashed names, as a set rebuilt whenever the manifest is reloaded."""
    global _hashed
    hashed_files = staticfiles_storage.hashed_files
    if _hashed[0] is not hashed_files:  # holding the dict keeps the identity test sound
        _hashed = (hashed_files, frozenset(hashed_files.values()))
    return _hashed[1]


_hashed: tuple[object, frozenset[str]] = (None, frozenset())
