"""The package's public surface, and its independence from tracker."""

from __future__ import annotations

import subprocess
import sys

import notifications


def test_the_public_names_are_listed_sorted_and_importable():
    assert notifications.__all__ == sorted(notifications.__all__)
    assert all(getattr(notifications, name, None) is not None for name in notifications.__all__)


def test_importing_every_module_never_imports_tracker():
    modules = [
        "attempts",
        "dispatcher",
        "email",
        "ratelimit",
        "render",
        "retry",
        "signing",
        "ssrf",
        "webhook",
    ]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('notifications.' + name)\n"
        "print(sorted(m for m in sys.modules if m == 'tracker' or m.startswith('tracker.')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)  # noqa: S603
    assert result.stdout.strip() == "[]"
