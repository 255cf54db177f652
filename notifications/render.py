"""Rendering notification emails from the Jinja2 templates in `templates/email/`.

One environment for pages and emails, autoescaping only what is HTML or XML: an email's plain-text part and
subject must show a customer's "<" as "<", while its HTML part must never let a note's markup through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from notifications.email import one_line


def make_environment(templates_dir: Path | str, **options: Any) -> jinja2.Environment:
    """The Jinja2 environment over `templates_dir`; `options` (e.g. `extensions`) go to Jinja2 as they are."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        undefined=jinja2.StrictUndefined,
        **options,
    )


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(environment: jinja2.Environment, name: str, context: Mapping[str, Any]) -> RenderedEmail:
    """Render `email/<name>.subject.txt`, `email/<name>.txt` and `email/<name>.html` with `context`."""

    def render(suffix: str) -> str:
        return environment.get_template(f"email/{name}{suffix}").render(context)

    return RenderedEmail(subject=one_line(render(".subject.txt")), text=render(".txt"), html=render(".html"))
