"""Tortoise configuration built from settings."""

from __future__ import annotations

from typing import Any

from tracker.settings import Settings

MODELS_MODULE = "tracker.db.models"
MIGRATIONS_MODULE = "tracker.db.migrations"


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url.removeprefix("postgresql://")
    return {
        "connections": {"default": url},
        "apps": {
            "tracker": {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }
