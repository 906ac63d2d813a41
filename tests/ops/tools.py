"""Helpers for the operations tests: external checkers (systemd-analyze, promtool)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, install_hint: str) -> str:
    """The path of executable `name`. Absent: fail under CI=true (the CI image must have it),
    skip otherwise; the message says how to install it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; {install_hint}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
