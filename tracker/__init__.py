"""tracker: keeps customers informed about long-running, stage-based work."""

from __future__ import annotations

__version__ = "0.1.0"
