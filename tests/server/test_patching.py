"""Each patch checks releases and private names first: canaries on the installed libraries,
and fake targets for a patch that cannot apply."""

from __future__ import annotations

import logging

import pytest
from django.core.checks import Error, Warning

from timer.server import PATCHES, close_frames, patching
from timer.server.checks import check_server_patches, server_patch_messages
from timer.server.patching import Patch, apply, assigned_in, attribute, key_in, parameter, problems

BY_NAME = {patch.name: patch for patch in PATCHES}


@pytest.mark.parametrize("patch", PATCHES, ids=lambda patch: patch.name)
def test_patch__installed_releases_and_every_private_name_check_out(patch):
    """Canary: an upgrade that moves a release out of range or drops a name fails here."""
    assert problems(patch) == []
    assert all(need.present for need in patch.needs())


@pytest.mark.parametrize(
    "name, touched",
    [
        ("close codes", "WebSocketProtocol.sendCloseFrame"),
        ("close codes", "STATE_CLOSING"),
        ("denial response", "self.handshake_deferred"),
        ("denial response", "self.server"),
        ("denial response", "failHandshake"),
        ("denial response", "Server.protocol_disconnected"),
        ("send errors", "self.connections"),
        ("send errors", "'disconnected'"),
        ("send errors", "Server.handle_reply"),
        ("message size limit", "failByDrop="),
        ("message size limit", "maxFramePayloadSize="),
        ("header deadline", "_channel"),
        ("header deadline", "self.reactor"),
        ("header deadline", "HTTPChannel.allHeadersReceived"),
        ("lazy pformat", "protocol.pformat"),
        ("lazy pformat", "Timings"),
        ("lazy pformat", "self._timings"),
        ("eager writes", "self._tempDataBuffer"),
        ("eager writes", "FileDescriptor.dataBuffer"),
        ("eager writes", "FileDescriptor.offset"),
        ("eager writes", "self.socket"),
    ],
)
def test_patch__declares_the_private_names_it_touches(name, touched):
    """The canary covers the names each patch's code relies on, not only some of them."""
    assert any(touched in need.where for need in BY_NAME[name].needs())


def test_patches__required_are_errors_optional_are_warnings_with_distinct_ids():
    """Behaviour and security patches are required; the performance ones optional."""
    assert {p.name for p in PATCHES if not p.required} == {
        "lazy pformat",
        "eager writes",
        "sliced checks",
    }
    assert all(p.check_id.startswith("timer.E" if p.required else "timer.W") for p in PATCHES)
    assert len({p.check_id for p in PATCHES}) == len(PATCHES)


class Target:
    """A stand-in for a library class: has ``present``, sets ``self.kept`` in ``__init__``."""

    present = 1

    def __init__(self, limit: int = 0) -> None:
        self.kept = {"seen": limit}


def fake_patch(*, required: bool, needs=None, installs=None) -> Patch:
    return Patch(
        name=f"fake {'required' if required else 'optional'} {id(installs)}",
        check_id="timer.E099" if required else "timer.W099",
        required=required,
        versions={"somelib": ">=1.2,<1.3"},
        needs=needs or (lambda: [attribute(Target, "present"), attribute(Target, "absent")]),
        install=lambda: installs.append(1) if installs is not None else None,
        module="tests.fake_module",
    )


def version_12(distribution: str) -> str:
    return "1.2.5"


def test_needs__report_missing_class_instance_key_and_parameter_names():
    """Each kind of name is looked up where the library defines it."""
    assert attribute(Target, "present").present and not attribute(Target, "absent").present
    assert assigned_in(Target.__init__, "kept").present
    assert not assigned_in(Target.__init__, "dropped").present
    assert key_in(Target.__init__, "seen").present and not key_in(Target.__init__, "gone").present
    assert parameter(Target, "limit").present and not parameter(Target, "size").present
    assert not assigned_in(object(), "kept").present  # not a function at all


def test_problems__name_the_release_outside_the_range_and_a_missing_library():
    """A release outside the tested range, or none installed, is a problem by name."""
    patch = fake_patch(required=True, needs=list)
    assert problems(patch, version_of=version_12) == []
    assert problems(patch, version_of=lambda d: "1.3.0") == [
        "somelib 1.3.0 is outside the tested range >=1.2,<1.3"
    ]
    assert problems(patch, version_of=lambda d: None) == ["somelib is not installed"]


def test_problems__a_real_patch_against_an_untested_release():
    """The close-code patch refuses a daphne it was not written for."""
    found = problems(
        close_frames.PATCH, version_of=lambda d: "4.3.0" if d == "daphne" else "26.10.2"
    )
    assert found == ["daphne 4.3.0 is outside the tested range >=4.2.2,<4.3"]


def test_problems__a_target_that_cannot_be_imported():
    """A module gone from the library is reported, not raised."""

    def needs():
        import daphne.no_such_module  # noqa: F401

    assert (
        "cannot look up"
        in problems(fake_patch(required=True, needs=needs), version_of=version_12)[0]
    )


def test_apply__required_patch_with_a_missing_name_is_not_installed_and_logged(caplog):
    """The library is left alone, and an ERROR line says which name and how to fix it."""
    installs: list[int] = []
    patch = fake_patch(required=True, installs=installs)
    with caplog.at_level(logging.WARNING, logger=patching.__name__):
        assert apply(patch, version_of=version_12) is False
    assert installs == [] and not patch.is_installed
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "Target.absent is missing" in record.getMessage()
    assert "timer.E099" in record.getMessage() and "somelib>=1.2,<1.3" in record.getMessage()


def test_apply__optional_patch_that_cannot_apply_is_skipped_with_a_warning(caplog):
    """An optional patch is skipped; the line is a WARNING."""
    installs: list[int] = []
    patch = fake_patch(required=False, installs=installs)
    with caplog.at_level(logging.WARNING, logger=patching.__name__):
        assert apply(patch, version_of=version_12) is False
    assert installs == []
    assert [record.levelno for record in caplog.records] == [logging.WARNING]


def test_apply__installs_once_when_everything_checks_out():
    """Idempotent: the second apply installs nothing again."""
    installs: list[int] = []
    patch = fake_patch(required=True, installs=installs, needs=list)
    assert apply(patch, version_of=version_12) and apply(patch, version_of=version_12)
    assert installs == [1] and patch.is_installed


def test_check_server_patches__error_for_required_warning_for_optional():
    """A required patch that cannot apply is a system-check error, an optional one a warning."""
    required, optional = fake_patch(required=True), fake_patch(required=False)
    error, warning = server_patch_messages([required, optional], version_of=version_12)
    assert type(error) is Error and error.id == "timer.E099"
    assert type(warning) is Warning and warning.id == "timer.W099"
    assert "Target.absent is missing" in error.msg and "tests.fake_module" in error.msg
    assert "somelib>=1.2,<1.3" in error.hint
    assert (
        server_patch_messages([required], version_of=lambda d: "2.0")[0].msg.count(
            "somelib 2.0 is outside"
        )
        == 1
    )


def test_check_server_patches__silent_on_the_installed_releases():
    """The pinned daphne, Twisted and autobahn raise nothing."""
    assert check_server_patches() == []
