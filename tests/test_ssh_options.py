"""The SSH command lines: the control socket's path fits a Unix socket whatever LEGALFT_HOME is."""

from __future__ import annotations

import pytest

from legalft.targets.ssh import SshHost

# ssh makes the socket as DIR/<40 hex digits>.<17 characters> before renaming it; macOS allows 103 bytes.
SOCKET_LIMIT = 103


@pytest.mark.parametrize("length", [20, 44, 45, 46, 52, 120])
def test_the_control_socket_fits_whatever_the_home(tmp_path, monkeypatch, length):
    home = tmp_path / "h"
    home = home.with_name("h" + "x" * max(0, length - len(str(home)) - 5))
    monkeypatch.setenv("LEGALFT_HOME", str(home))
    options = SshHost("gpu-box").options()
    control = next(o.split("=", 1)[1] for o in options if o.startswith("ControlPath="))
    folder = control.rsplit("/", 1)[0]
    assert len(folder.encode()) + 1 + 40 + 17 <= SOCKET_LIMIT, folder
    tunnel = SshHost("gpu-box").tunnel_options()
    assert "ControlPath=none" in tunnel and "ExitOnForwardFailure=yes" in tunnel
