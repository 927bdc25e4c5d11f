"""System checks: each patch of daphne, Twisted and autobahn can apply to what is installed."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.checks import CheckMessage, Error, Warning, register

from . import PATCHES, patching
from .patching import Patch


@register()
def check_server_patches(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Each patch of daphne/Twisted/autobahn can apply to the installed releases.

    A required one that cannot is an error (timer.E011-E015), an optional one a warning
    (timer.W011-W013); the message says which release or private name is off.
    """
    return server_patch_messages(PATCHES)


def server_patch_messages(patches: Iterable[Patch], **kwargs) -> list[CheckMessage]:
    """The check messages for ``patches`` (``kwargs`` go to :func:`patching.problems`)."""
    messages: list[CheckMessage] = []
    for patch in patches:
        found = patching.problems(patch, **kwargs)
        if not found:
            continue
        kind = Error if patch.required else Warning
        effect = (
            "the node would serve without it"
            if patch.required
            else "it is skipped; the node only loses speed"
        )
        messages.append(
            kind(
                f"The server patch {patch.name!r} ({patch.module}) cannot apply: "
                f"{'; '.join(found)}; {effect}.",
                hint=patching.hint(patch),
                id=patch.check_id,
            )
        )
    return messages
