"""Sign-in rate limits (quart-rate-limiter), per client address and per username.

Each app has its own limiter and store: memory by default, Redis when
``RATE_LIMIT_STORAGE_URL`` is set, so several workers and instances count against the
same limits.
"""

from __future__ import annotations

import math
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from quart import Quart, Response, after_this_request, current_app, request
from quart.typing import ResponseTypes
from quart_rate_limiter import QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, RateLimit, RateLimiter
from quart_rate_limiter.redis_store import RedisStore
from quart_rate_limiter.store import RateLimiterStoreABC
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from werkzeug.exceptions import RequestEntityTooLarge, ServiceUnavailable

from quart_app.data.usernames import username_key
from quart_app.upstream.rate_limiter import (
    add_limit_headers,
    check_limits,
    close_redis_client,
    redis_client,
    serving_hooks,
)

EXTENSION_KEY = "quart_app.rate_limiter"
# Beyond this many keys the memory store sweeps out the ones whose limits have reset.
_MEMORY_SWEEP_THRESHOLD = 10_000


class ExpiringMemoryStore(RateLimiterStoreABC):
    """In-process store that forgets keys once their limit has fully reset.

    Without that, every made-up username sent to the login form would stay in memory.
    """

    def __init__(self) -> None:
        self._tats: dict[str, datetime] = {}

    async def before_serving(self) -> None:
        """Nothing to connect to."""

    async def get(self, key: str, default: datetime) -> datetime:
        """The theoretical arrival time stored for *key*, else *default*."""
        return self._tats.get(key, default)

    async def set(self, key: str, tat: datetime) -> None:
        """Store *tat* for *key*, sweeping expired keys when the store grows large."""
        self._tats[key] = tat
        if len(self._tats) > _MEMORY_SWEEP_THRESHOLD:
            now = datetime.now(UTC)
            self._tats = {k: v for k, v in self._tats.items() if v > now}

    async def after_serving(self) -> None:
        """Nothing to close."""


class ExpiringRedisStore(RedisStore):
    """quart-rate-limiter's Redis store, with each key expiring when its limit resets.

    Every wait on Redis is bounded by *timeout* seconds, with one immediate retry (a
    pooled connection may have gone stale): a Redis that is down or stops answering
    costs a sign-in a few seconds and a 503, not redis-py's default retries.
    """

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), retries=1),
        )

    async def set(self, key: str, tat: datetime) -> None:
        """Store *tat* for *key* until that moment passes."""
        await redis_client(self).set(key, tat.timestamp(), exat=math.ceil(tat.timestamp()) + 1)

    async def after_serving(self) -> None:
        """Close the connection pool (the base class calls redis-py's deprecated close)."""
        await close_redis_client(self)


class AppRateLimiter(RateLimiter):
    """quart-rate-limiter for one app, with the store its config names.

    The same hooks as ``RateLimiter.init_app``, but only the before-request one runs
    for every request, returning at once on routes without limits (few are sign-ins).
    The limiter's own hooks are private: ``quart_app.upstream.rate_limiter`` calls them.
    """

    def __init__(self, app: Quart) -> None:
        url = app.config["RATE_LIMIT_STORAGE_URL"]
        store = (
            ExpiringRedisStore(url, app.config["RATE_LIMIT_STORAGE_TIMEOUT"])
            if url
            else ExpiringMemoryStore()
        )
        super().__init__(store=store)
        app.extensions[EXTENSION_KEY] = self
        app.config["QUART_RATE_LIMITER_ENABLED"] = app.config["RATE_LIMIT_ENABLED"]
        app.before_request(self._before_limited_request)
        open_store, close_store = serving_hooks(self)
        app.before_serving(open_store)
        app.after_serving(close_store)

    async def _before_limited_request(self) -> None:
        if _route_is_limited():
            # Only limited routes get the RateLimit-* headers: no after-request hook for
            # every other request.
            after_this_request(self._after_limited_request)
            try:
                await check_limits(self)
            except RedisError as error:
                # Without its counts the limiter cannot let a sign-in through safely.
                current_app.logger.warning("rate-limit store unavailable: %s", error)
                raise ServiceUnavailable("Rate-limit store unavailable", retry_after=5) from error

    async def _after_limited_request(self, response: ResponseTypes) -> ResponseTypes:
        # A 503 may be the store failing; asking it again would only wait again.
        if response.status_code != 503 and isinstance(response, Response):
            # The RateLimit-* headers are a courtesy: not worth a 500 when the store
            # fails, or when the body the key function reads is over the size limit.
            with suppress(RedisError, RequestEntityTooLarge):
                return await add_limit_headers(self, response)
        return response


def _route_is_limited() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return hasattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE)


async def client_address() -> str:
    """The address the request came from.

    Not ``access_route``: a client can put anything in X-Forwarded-For. Behind a
    proxy, a proxy-fix middleware makes ``remote_addr`` the real client.
    """
    return f"address:{request.remote_addr}"


async def submitted_username() -> str:
    """The username a sign-in request names, from its JSON body or form."""
    if request.is_json:
        data = await request.get_json(silent=True)
    else:
        data = await request.form
    name = data.get("username") if hasattr(data, "get") else None
    return f"username:{username_key(name) if isinstance(name, str) else ''}"


async def not_a_submission() -> bool:
    """True for GET/HEAD of the sign-in form: only attempts count."""
    return request.method != "POST"


PERIOD = timedelta(minutes=1)
# Generous for people, tight for guessing: argon2 already makes each attempt cost.
# The tighter limit comes first: the RateLimit-* headers describe the first one.
SIGN_IN_LIMITS = [
    RateLimit(10, PERIOD, key_function=submitted_username, skip_function=not_a_submission),
    RateLimit(30, PERIOD, key_function=client_address, skip_function=not_a_submission),
]


def init_app(app: Quart) -> None:
    """Give *app* its own rate limiter (see ``AppRateLimiter``)."""
    AppRateLimiter(app)
