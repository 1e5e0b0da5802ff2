"""English and German, chosen from Accept-Language."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from tests.helpers.apps import Client

PACKAGE = Path(__file__).resolve().parent.parent / "quart_app"
TRANSLATIONS = PACKAGE / "translations"


@pytest.mark.parametrize(
    ("accept_language", "locale", "heading"),
    [
        (None, "en", "<h1>Sign in</h1>"),
        ("en-GB,en;q=0.9", "en", "<h1>Sign in</h1>"),
        ("de-DE,de;q=0.9,en;q=0.8", "de", "<h1>Anmelden</h1>"),
        ("fr-FR,de;q=0.5", "de", "<h1>Anmelden</h1>"),
        ("fr-FR", "en", "<h1>Sign in</h1>"),
    ],
)
async def test_pages_follow_accept_language(
    client: Client, accept_language: str | None, locale: str, heading: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    response = await client.get("/login", headers=headers)
    page = await response.get_data(as_text=True)
    assert heading in page
    assert f'<html lang="{locale}">' in page
    assert response.headers["Content-Language"] == locale
    assert "Accept-Language" in response.headers["Vary"]


@pytest.mark.parametrize("path", ["/api/status", "/api/me", "/api/no-such-route"])
async def test_json_answers_do_not_depend_on_the_language(client: Client, path: str) -> None:
    response = await client.get(path, headers={"Accept-Language": "de"})
    assert response.mimetype == "application/json"
    assert "Content-Language" not in response.headers
    assert "Accept-Language" not in response.headers.get("Vary", "")


async def test_flash_messages_are_translated(client: Client) -> None:
    german = {"Accept-Language": "de"}
    response = await client.get("/admin", headers=german)
    page = await (await client.get(response.headers["Location"], headers=german)).get_data(
        as_text=True
    )
    assert "Administratorrechte erforderlich" in page


def test_every_message_has_a_german_translation() -> None:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    messages = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(PACKAGE), method_map, options_map=options
        )
    }
    assert "Admin access required" in messages
    # The compiled catalog, loaded the way quart-babel loads it.
    catalog = Translations.load(str(TRANSLATIONS), ["de"])
    untranslated = sorted(m for m in messages if isinstance(m, str) and catalog.gettext(m) == m)
    assert untranslated == ["Status"]  # the same word in German


@pytest.mark.parametrize(
    "source",
    sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")),
    ids=lambda path: path.parts[-3],
)
def test_compiled_catalog_matches_its_source(source: Path) -> None:
    with source.open("rb") as po_file:
        wanted = {(m.id, m.string) for m in read_po(po_file) if m.id and m.string and not m.fuzzy}
    with source.with_suffix(".mo").open("rb") as mo_file:
        compiled = {(m.id, m.string) for m in read_mo(mo_file) if m.id}
    assert compiled == wanted, "stale .mo: run .venv/bin/pybabel compile -d quart_app/translations"
