"""Delivery engine for tracker's notifications: outbox, email and signed webhooks.

It takes "event type + payload + recipients" and renders, signs, sends, retries and records. It knows
nothing about jobs and never imports `tracker`.
"""

from __future__ import annotations
