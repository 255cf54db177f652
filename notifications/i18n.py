"""Translations for everything customers read: emails (here) and pages (tracker's web edge).

The gettext catalogs live in `templates/locale/<language>/LC_MESSAGES/messages.po` and are compiled to
`.mo` files by `make install`. There is one Jinja2 environment per language, each with its translations
installed, so rendering in one language never races with another.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import jinja2
import jinja2.bccache
from babel.support import NullTranslations, Translations

from notifications.render import make_environment

LANGUAGES: Final = ("en", "fr", "nl", "de")
"""The customer-facing languages, the first the default."""
DOMAIN: Final = "messages"


def language_of(locale: str | None) -> str:
    """The customer-facing language for a locale such as `fr-BE`, `nl_NL` or `de`; English otherwise."""
    if locale:
        primary = locale.replace("_", "-").split("-", 1)[0].lower()
        if primary in LANGUAGES:
            return primary
    return LANGUAGES[0]


def load_translations(locale_dir: Path | str, language: str) -> NullTranslations:
    """The compiled catalog for `language`; a missing `.mo` is an installation error, not English."""
    path = Path(locale_dir) / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make install` to compile the catalogs")
    with path.open("rb") as catalog:
        return Translations(catalog, domain=DOMAIN)


class _SharedBytecode(jinja2.BytecodeCache):
    """Compiled templates kept in memory for environments that differ only in their translations (the
    compiled code looks words up at render time), so each template compiles once, not once a language
    nor once for each part of the process that renders it (pages, emails, the dashboard). Jinja checks
    each entry against its template's source, so an edited template compiles afresh."""

    def __init__(self) -> None:
        self._compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        compiled = self._compiled.get(bucket.key)
        if compiled is not None:
            bucket.bytecode_from_string(compiled)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._compiled[bucket.key] = bucket.bytecode_to_string()


_COMPILED: Final = _SharedBytecode()


def localized_environments(templates_dir: Path | str) -> Mapping[str, jinja2.Environment]:
    """One environment per language over `templates_dir`, with `{% trans %}`, `_()` and `ngettext`.

    Templates ship with the code, so a loaded template is not checked against its file again (a check is
    a `stat` per template on every render: emails render three each).
    """
    locale_dir = Path(templates_dir) / "locale"
    environments = {}
    for language in LANGUAGES:
        environment = make_environment(
            templates_dir, extensions=["jinja2.ext.i18n"], auto_reload=False, bytecode_cache=_COMPILED
        )
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            load_translations(locale_dir, language), newstyle=True
        )
        environment.globals["language"] = language
        environments[language] = environment
    return environments
