"""Translations: English and German, chosen per request from ``Accept-Language``.

Catalogs are kept as ``.po`` source in ``translations/`` and compiled in memory when
the app starts, so no binary ``.mo`` file is committed or has to be built on install.
"""

from __future__ import annotations

from importlib.resources import files
from io import BytesIO

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from quart import Quart, Response, current_app, g, has_request_context, request

DEFAULT_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "de")
_EXTENSION_KEY = "quart_app.i18n"


def load_catalog(locale: str) -> Translations:
    """Compile ``translations/<locale>/LC_MESSAGES/messages.po`` into a catalog."""
    source = files("quart_app") / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with source.open("rb") as po_file:
        catalog = read_po(po_file, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def current_locale() -> str:
    """The locale of this request, chosen from ``Accept-Language`` on first use."""
    if not has_request_context():
        return DEFAULT_LOCALE
    if "locale" not in g:
        # Chosen lazily: JSON answers never need it, and most requests are JSON.
        g.locale = request.accept_languages.best_match(SUPPORTED_LOCALES, default=DEFAULT_LOCALE)
    locale: str = g.locale
    return locale


def _translations() -> NullTranslations:
    catalogs: dict[str, NullTranslations] = current_app.extensions[_EXTENSION_KEY]
    return catalogs[current_locale()]


def _(message: str) -> str:
    """Translate *message* into the request's language; format with ``%`` afterwards."""
    if not has_request_context():
        return message
    return _translations().gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """Translate a message that depends on *count*."""
    if not has_request_context():
        return singular if count == 1 else plural
    return _translations().ngettext(singular, plural, count)


def mark_language(response: Response) -> None:
    """Say which language the HTML *response* is in, and that it depends on Accept-Language."""
    response.headers["Content-Language"] = current_locale()
    response.vary.add("Accept-Language")


def init_app(app: Quart) -> None:
    """Load the catalogs and give templates ``_()``."""
    catalogs: dict[str, NullTranslations] = {DEFAULT_LOCALE: NullTranslations()}
    for locale in SUPPORTED_LOCALES:
        if locale != DEFAULT_LOCALE:
            catalogs[locale] = load_catalog(locale)
    app.extensions[_EXTENSION_KEY] = catalogs
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_, ngettext=ngettext, newstyle=True
    )
    app.jinja_env.globals["current_locale"] = current_locale
