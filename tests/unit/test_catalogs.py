"""Every customer-facing message is translated in every language, and the catalogs hold what the code says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from notifications.i18n import LANGUAGES, language_of, localized_environments

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "templates" / "locale"


def catalog(language: str) -> Catalog:
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


def extracted(tmp_path: Path) -> set[str]:
    """The message ids the code and templates use now, extracted as `make messages` does."""
    pot = tmp_path / "messages.pot"
    subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [
            *(sys.executable, "-m", "babel.messages.frontend", "extract"),
            *("-F", "babel.cfg", "--no-location", "--omit-header"),
            *("-k", "_", "-k", "gettext", "-k", "ngettext:1,2", "-o", str(pot), "."),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as template:
        return {str(message.id) for message in read_po(template) if message.id}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated(language: str) -> None:
    untranslated = [
        message.id
        for message in catalog(language)
        if message.id and (message.fuzzy or not message.string or not all(message.string))
    ]
    assert untranslated == []


def test_catalogs_hold_exactly_what_the_code_says(tmp_path: Path) -> None:
    used = extracted(tmp_path)
    for language in LANGUAGES:
        held = {str(message.id) for message in catalog(language) if message.id}
        assert held == used, f"run `make messages` and translate; {language} differs"


def test_placeholders_survive_translation() -> None:
    """A translation that drops or renames `%(name)s` would fail at render time, in one language only."""
    for language in LANGUAGES:
        for message in catalog(language):
            if not message.id or not message.python_format:
                continue
            names = {name for text in _texts(message.id) for name in _placeholders(text)}
            for text in _texts(message.string):
                assert _placeholders(text) <= names, (language, message.id)


def _texts(value: object) -> list[str]:
    """A message's singular and plural forms (babel gives a plural message as a tuple)."""
    return [str(text) for text in value] if isinstance(value, tuple | list) else [str(value)]


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", text))


@pytest.mark.parametrize(
    ("locale", "language"),
    [("fr-BE", "fr"), ("nl_NL", "nl"), ("de", "de"), ("en-GB", "en"), ("es", "en"), ("", "en"), (None, "en")],
)
def test_language_of_a_locale(locale: str | None, language: str) -> None:
    assert language_of(locale) == language


def test_an_environment_per_language() -> None:
    environments = localized_environments(ROOT / "templates")
    assert sorted(environments) == sorted(LANGUAGES)
    assert environments["nl"].from_string("{{ language }}").render() == "nl"
