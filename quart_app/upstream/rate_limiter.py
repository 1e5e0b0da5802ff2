"""quart-rate-limiter: its private request and serving hooks, and its Redis store's client.

``RateLimiter._before_request``, ``_after_request``, ``_before_serving``, ``_after_serving``
    ``RateLimiter.init_app`` registers the four as hooks of the app, both request hooks
    for every request. ``security.rate_limits.AppRateLimiter`` registers the serving hooks
    itself (``serving_hooks``) and runs the request hooks only on the few routes that
    have limits (``check_limits`` before the view, ``add_limit_headers`` after it), so
    every other request skips working out its view's limits and an after-request hook.
    Relied on: the four exist, are coroutine functions taking nothing but the response
    (``_after_request``), ``_before_request`` raises ``RateLimitExceeded`` (a 429) once
    a limit is spent, and ``_after_request`` adds the ``RateLimit-*`` headers.

``RedisStore._redis``
    The store's client, set by ``before_serving``. ``security.rate_limits.ExpiringRedisStore``
    uses it to store a key with an expiry (upstream's ``set`` keeps every key
    forever) and to close it with ``aclose`` (upstream's ``after_serving`` calls
    redis-py's deprecated ``close``, a ``DeprecationWarning``).

No upstream report. A public way to run the limits for one request (or an option to
register no hooks), expiring keys and ``aclose`` in the store would let this go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from quart import Response
from quart_rate_limiter import RateLimiter
from quart_rate_limiter.redis_store import RedisStore
from redis.asyncio import Redis


async def check_limits(limiter: RateLimiter) -> None:
    """Count this request against its route's limits; ``RateLimitExceeded`` past one."""
    await limiter._before_request()


async def add_limit_headers(limiter: RateLimiter, response: Response) -> Response:
    """*response* with the ``RateLimit-*`` headers of its route's first limit."""
    return await limiter._after_request(response)


def serving_hooks(
    limiter: RateLimiter,
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """The hooks that connect *limiter*'s store before serving and close it after."""
    return limiter._before_serving, limiter._after_serving


def redis_client(store: RedisStore) -> Redis:
    """The client *store* connected in ``before_serving``."""
    client = store._redis
    assert client is not None  # connected in before_serving
    return client


async def close_redis_client(store: RedisStore) -> None:
    """Close *store*'s client, if it has one, with ``aclose``; forget it."""
    if store._redis is not None:
        await store._redis.aclose()
        store._redis = None
