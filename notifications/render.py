"""Rendering notification emails from the Jinja2 templates in `templates/email/`.

One environment for pages and emails, autoescaping only what is HTML or XML: an email's plain-text part and
subject must show a customer's "<" as "<", while its HTML part must never let a note's markup through.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import escape

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


_HOLE = f"\ue000{secrets.token_hex(8)}:"
"""Marks where a recipient's own value goes: a private-use character and a token of this process, so
that no value (a job title, a note) can pass for one."""
_HOLES = re.compile(rf"{_HOLE}(\w+)\ue001")


@dataclass(frozen=True, slots=True)
class MailMerge:
    """One email rendered once for many recipients, with holes where each one's own values go.

    Each part is its text split at the holes: literal, field name, literal, ... A value fills its hole
    as the template would have shown it: escaped in the HTML part, as it is in the subject and text.
    """

    subject: tuple[str, ...]
    text: tuple[str, ...]
    html: tuple[str, ...]

    def fill(self, values: Mapping[str, str]) -> RenderedEmail:
        """The email of one recipient; `values` has a value for every personal field."""
        escaped = {name: str(escape(value)) for name, value in values.items()}
        return RenderedEmail(
            subject=one_line(_filled(self.subject, values)),
            text=_filled(self.text, values),
            html=_filled(self.html, escaped),
        )


def _filled(pieces: tuple[str, ...], values: Mapping[str, str]) -> str:
    return "".join(piece if n % 2 == 0 else values[piece] for n, piece in enumerate(pieces))


def merge_email(
    environment: jinja2.Environment, name: str, context: Mapping[str, Any], personal: Collection[str]
) -> MailMerge:
    """Render `email/<name>` once with `context`, leaving a hole for each field in `personal` (each
    recipient's own: their name, their links). A personal field must be shown as it is (through `{{ }}`
    or `{% trans %}`), never filtered or tested, since the template sees only its hole."""
    holes = {field: f"{_HOLE}{field}\ue001" for field in personal}
    whole = {**context, **holes}

    def pieces(suffix: str) -> tuple[str, ...]:
        rendered = environment.get_template(f"email/{name}{suffix}").render(whole)
        return tuple(_HOLES.split(rendered))

    return MailMerge(subject=pieces(".subject.txt"), text=pieces(".txt"), html=pieces(".html"))
