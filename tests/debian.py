"""Tools from Debian packages for the tests: found on PATH, else installed with apt-get when the tests run as
root (as in CI), else the test is skipped with the command that would install them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def ensure_debian_tool(binary: str, package: str) -> str:
    """Path of ``binary``; installs Debian's ``package`` first when it is missing and we are root."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{binary} is not installed and cannot be installed here: apt-get install {package} (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        capture_output=True,
        timeout=900,
    )
    found = shutil.which(binary)
    assert found, f"apt-get installed {package} but {binary} is not on PATH"
    return found
