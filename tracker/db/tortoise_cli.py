"""The configuration the `tortoise` CLI reads (`make migrations`; see [tool.tortoise] in pyproject.toml).

Kept apart so that only that developer tool builds settings from the environment at import time.
"""

from __future__ import annotations

import os

from tracker.db.config import tortoise_config
from tracker.settings import Settings

TORTOISE_ORM = tortoise_config(Settings.from_env(os.environ))
