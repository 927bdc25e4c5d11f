"""Installing the whole adapter."""

from timer import server


def test_install__every_patch_applies_on_the_installed_releases():
    """Each patch reports itself applied."""
    assert server.install() == {patch.name: True for patch in server.PATCHES}


def test_install__wraps_each_method_once_however_often_it_runs():
    """Two patches share daphne's handle_reply: each wraps it exactly once."""
    from daphne.ws_protocol import WebSocketProtocol

    server.install()
    server.install()
    names = []
    function = WebSocketProtocol.handle_reply
    while hasattr(function, "wstime_patch"):
        names.append(function.wstime_patch)
        function = function.__wrapped__
    assert sorted(names) == ["close codes", "denial response"]
