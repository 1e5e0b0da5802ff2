"""Configuration defaults and the checks run before the app starts."""

from __future__ import annotations

from typing import Any

from quart import Quart

DEFAULTS: dict[str, Any] = {
    # No default secret: production must supply QUART_SECRET_KEY (see check_secret_key).
    "SECRET_KEY": None,
    # Filled in by create_app with a file under instance/ when left unset.
    "DATABASE_URL": None,
    "DATABASE_ECHO": False,
    # Connections per worker process, opened on demand. PostgreSQL: keep instances x
    # workers x size below the server's max_connections (100 by default). SQLite: each
    # connection is a thread; reads run on one more, read-only, on the loop's thread.
    "DATABASE_POOL_SIZE": 10,
    # Seconds to wait, at most, for a new connection to open, for a statement to
    # answer, and for a pooled connection to come free; past any of them the request
    # gets 503 with Retry-After instead of hanging.
    "DATABASE_CONNECT_TIMEOUT": 3.0,
    "DATABASE_STATEMENT_TIMEOUT": 5.0,
    "DATABASE_POOL_TIMEOUT": 3.0,
    # Seconds between deletions of expired and revoked sign-in sessions, in every
    # worker; 0 turns it off (then run `quart --app quart_app prune-sessions` on a timer).
    "SESSION_PRUNE_INTERVAL": 3600,
    # Seconds a change stays in the event log (data/events.py), replayable by a client
    # that reconnects, and between deletions of older ones, in every worker; an interval
    # of 0 turns them off (then run `quart --app quart_app prune-events` on a timer).
    "EVENT_RETENTION": 86400,
    "EVENT_PRUNE_INTERVAL": 3600,
    # Live streams (/api/things/events, /api/admin/events; data/fanout.py). What tells
    # each worker that a change committed: "auto" picks PostgreSQL's LISTEN/NOTIFY on
    # PostgreSQL, else Redis pub/sub when EVENT_REDIS_URL (or RATE_LIMIT_STORAGE_URL)
    # names a Redis, else "poll": each worker reads the log every EVENT_POLL_INTERVAL
    # seconds (with PostgreSQL or Redis, every 5 s at least, in case a notice is lost).
    "EVENT_FANOUT": "auto",
    "EVENT_REDIS_URL": None,
    "EVENT_POLL_INTERVAL": 0.25,
    # Open streams per user in each worker process; past it, 429.
    "EVENT_STREAMS_PER_USER": 10,
    # Events buffered for a client that reads slower than they come; past it, its
    # stream ends (it reconnects and replays from Last-Event-ID).
    "EVENT_STREAM_BUFFER": 256,
    # Seconds of quiet before a keep-alive comment, so proxies keep idle streams open.
    "EVENT_STREAM_KEEPALIVE": 15.0,
    # The reconnection delay a stream asks of EventSource (its retry: field), seconds.
    "EVENT_STREAM_RETRY": 2.0,
    # Seconds between checks of an idle stream's session, for what no event announces
    # (a sign-in that expired); revocations end streams at once.
    "EVENT_STREAM_RECHECK": 300.0,
    # Seconds between moves of a serving worker's surviving objects out of the garbage
    # collector's sight (quart_app.http.collector); 0 leaves the collector as Python
    # sets it. Then the share by which its allocated memory blocks may grow before it
    # thaws them and collects in full.
    "GC_FREEZE_INTERVAL": 1.0,
    "GC_FROZEN_GROWTH": 0.25,
    # JSON bodies here are small; anything larger is a mistake or an attack.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # quart-auth's own settings. Lifetime in seconds of a sign-in, cookie and bearer
    # token alike.
    "QUART_AUTH_DURATION": 7 * 24 * 60 * 60,
    "QUART_AUTH_COOKIE_SECURE": True,
    "QUART_AUTH_COOKIE_SAMESITE": "Lax",
    "QUART_AUTH_COOKIE_NAME": "quart_app_auth",
    "QUART_AUTH_COOKIE_HTTP_ONLY": True,
    # Quart's own: the cookie holding flash messages and the forms' CSRF token.
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
    # argon2id cost; OWASP's minimum is 19 MiB with 2 passes.
    "ARGON2_TIME_COST": 3,
    "ARGON2_MEMORY_COST": 64 * 1024,
    "ARGON2_PARALLELISM": 1,
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted;
    # 0 means clients connect directly, and those headers are ignored.
    "PROXY_TRUSTED_HOPS": 0,
    # Sign-in rate limits; a redis:// URL shares them between workers and instances.
    "RATE_LIMIT_ENABLED": True,
    "RATE_LIMIT_STORAGE_URL": None,
    # Seconds to connect to or hear from the Redis store; past it, sign-ins get a 503.
    "RATE_LIMIT_STORAGE_TIMEOUT": 1.0,
    # ISO 8601 datetimes in API bodies; without mode="json" Quart writes RFC 822 dates.
    "QUART_SCHEMA_PYDANTIC_DUMP_OPTIONS": {"mode": "json"},
}

# Values that show up in tutorials; a key equal to one of them is not a secret.
_PLACEHOLDER_SECRETS = {"dev", "secret", "changeme", "change-me", "development", "test"}
_MIN_SECRET_LENGTH = 32


class InsecureConfigError(RuntimeError):
    """Raised when production settings would leave the app unsafe."""


def load_environment(app: Quart) -> None:
    """Read ``QUART_*`` environment variables into *app*'s config, each under its one name.

    ``from_prefixed_env`` strips the prefix, which suits the app's and Quart's settings
    (``QUART_DATABASE_URL`` is ``DATABASE_URL``) but not quart-auth's, whose names start
    with it: ``QUART_AUTH_DURATION`` would arrive as ``AUTH_DURATION``, which nothing reads.
    """
    app.config.from_prefixed_env()
    for key in [key for key in app.config if key.startswith("AUTH_")]:
        app.config[f"QUART_{key}"] = app.config.pop(key)


def check_secret_key(app: Quart) -> None:
    """Refuse to run outside debug/testing with a missing or guessable secret key."""
    if app.debug or app.testing:
        if not app.config["SECRET_KEY"]:
            app.config["SECRET_KEY"] = "insecure-key-for-debug-and-tests-only"  # noqa: S105
        return
    key = app.config["SECRET_KEY"]
    if not isinstance(key, str | bytes) or not key:
        raise InsecureConfigError(
            "QUART_SECRET_KEY is not set. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and export it."
        )
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    if text.lower() in _PLACEHOLDER_SECRETS or len(text) < _MIN_SECRET_LENGTH:
        raise InsecureConfigError(
            f"QUART_SECRET_KEY is too weak: use at least {_MIN_SECRET_LENGTH} random characters."
        )
