"""The request's language for quart-babel: English or German, from ``Accept-Language``.

quart-babel translates (``quart_babel._`` in Python, ``{{ _() }}`` in templates) from
the compiled catalogs in ``translations/``; this module picks the locale it uses and
labels HTML answers with it. quart-babel registers no request hook: it calls the
selector the first time a request translates something, so JSON answers, which
translate nothing, never pay for the choice.
"""

from __future__ import annotations

from quart import Quart, Response, has_request_context, request
from quart_babel import Babel, get_locale

DEFAULT_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "de")


def select_locale() -> str:
    """The supported locale *Accept-Language* prefers; English outside a request (CLI)."""
    if not has_request_context():
        return DEFAULT_LOCALE
    return request.accept_languages.best_match(SUPPORTED_LOCALES, default=DEFAULT_LOCALE)


def current_locale() -> str:
    """The locale this request is answered in, as a language tag (``en``, ``de``)."""
    locale = get_locale()
    return DEFAULT_LOCALE if locale is None else str(locale)


def mark_language(response: Response) -> None:
    """Say which language the HTML *response* is in, and that it depends on Accept-Language."""
    response.headers["Content-Language"] = current_locale()
    response.vary.add("Accept-Language")


def init_app(app: Quart) -> None:
    """Translate *app*'s pages with quart-babel; give templates ``current_locale()``."""
    Babel(app, default_locale=DEFAULT_LOCALE, locale_selector=select_locale)
    app.jinja_env.globals["current_locale"] = current_locale
