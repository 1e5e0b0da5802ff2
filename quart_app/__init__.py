"""quart_app: the Flask answer on AJAX status codes, ported to async Quart."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quart import Quart


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: defaults, then ``QUART_*`` environment variables, then *config*.

    Every extension with settings (quart-auth, the rate limiter, quart-schema) is built
    here for this app alone, so apps built in one process never share settings.
    """
    # Imported here, as in Flask's tutorial: `python -m quart_app.serve` imports this
    # package, and its supervisor needs none of the app (its workers import it).
    from hypercorn.middleware import ProxyFixMiddleware

    from quart_app import cli
    from quart_app.config import DEFAULTS, check_secret_key, load_environment
    from quart_app.data import events, fanout, session_store
    from quart_app.data.database import db
    from quart_app.http import collector, framing
    from quart_app.security import auth, csrf, rate_limits
    from quart_app.security.passwords import passwords
    from quart_app.upstream.quart import App
    from quart_app.web import (
        cookie_session,
        errors,
        health,
        i18n,
        openapi,
        pages,
        response_headers,
        routing,
        seed,
    )
    from quart_app.web.api import bp as api_bp
    from quart_app.web.api import streams

    app = App(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    load_environment(app)
    if config is not None:
        app.config.from_mapping(config)
    if not app.config["DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)
        path = os.path.join(app.instance_path, "quart_app.sqlite3")
        app.config["DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    check_secret_key(app)

    routing.init_app(app)
    db.init_app(app)
    cookie_session.init_app(app)
    passwords.init_app(app)
    rate_limits.init_app(app)
    openapi.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    csrf.init_app(app)
    # Last of the request hooks: the credential check is the first database work, so
    # routing errors, CSRF refusals and rate limits all answer before it.
    auth.init_app(app)
    session_store.init_app(app)
    events.init_app(app)
    fanout.init_app(app)
    streams.init_app(app)
    collector.init_app(app)
    response_headers.init_app(app)
    cli.init_app(app)

    app.register_blueprint(pages.bp)
    app.register_blueprint(seed.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_bp)

    # An ambiguous request is refused before the app reads any of it.
    app.asgi_app = framing.RequestFramingGuard(app.asgi_app)  # type: ignore[method-assign]
    if hops := app.config["PROXY_TRUSTED_HOPS"]:
        # Behind that many proxies, take the client address and scheme from
        # X-Forwarded-For/-Proto, so rate limits and origin checks see the real client.
        app.asgi_app = ProxyFixMiddleware(  # type: ignore[method-assign]
            app.asgi_app, mode="legacy", trusted_hops=hops
        )
    return app
