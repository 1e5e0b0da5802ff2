"""Rules that must hold when requests race, checked with real concurrency.

Every test fires competing requests at the same moment with ``asyncio.gather``
through the Quart test client, against the real database of each backend. The test
client runs the app in the test's own event loop, so the requests interleave at every
await on the database or on a password hash, as they would in one worker under load.

The tests speak only HTTP (status codes, bodies, what a later request sees); where
they must look at what is stored, they read it with plain SQL and never write it.
Each test runs many rounds and counts the rounds that broke a rule, so a failure
says how often the race was lost.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from quart_app.data.database import build_engine
from quart_app.data.models import UserType
from tests.helpers.apps import ADMIN_PASSWORD, USER_PASSWORD, Client, add_user, make_app
from tests.helpers.services import reset_schema

# Rounds per test: enough that today's races show up on every run, few enough that the
# module stays well under a minute on two cores.
ADMIN_ROUNDS = 30
PASSWORD_ROUNDS = 20
SIGN_IN_WORKERS = 8
# KiB per password hash in the password test: about 3 ms a hash (see ``hashing_app``).
ARGON2_RACE_MEMORY = 8 * 1024
OWNER_ROUNDS = 20
CREATE_WORKERS = 8
# The longest pause before a racing request (see ``during``).
JITTER_SECONDS = 0.003


@asynccontextmanager
async def started_app(database_url: str, **overrides: Any) -> AsyncIterator[Quart]:
    """Like the ``app`` fixture: a started app on an empty schema, set up for bursts.

    Sign-in rate limits are off, since every round signs in many times, and an
    unhandled error is answered with a 500 (as in production) instead of being
    raised into the test, so one crashed request does not hide what the others did.
    """
    await reset_schema(database_url)
    application = make_app(
        database_url, RATE_LIMIT_ENABLED=False, PROPAGATE_EXCEPTIONS=False, **overrides
    )
    async with application.test_app():
        yield application


@pytest.fixture
async def race_app(database_url: str) -> AsyncIterator[Quart]:
    """A started app for racing requests, with the suite's cheap password hashing."""
    async with started_app(database_url) as application:
        yield application


@pytest.fixture
async def hashing_app(database_url: str) -> AsyncIterator[Quart]:
    """A started app whose password hash takes milliseconds, not a fraction of one.

    Production hashes take far longer than a database round trip; the suite's tiny
    cost would make a sign-in shorter than the steps of a password change it races.
    """
    async with started_app(database_url, ARGON2_MEMORY_COST=ARGON2_RACE_MEMORY) as application:
        yield application


@pytest.fixture
async def stored(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A separate engine on the test database, only ever used to read it."""
    engine = build_engine(database_url)
    yield engine
    await engine.dispose()


@dataclass(frozen=True)
class Answer:
    """What one request got back."""

    status: int
    body: Any


@dataclass(frozen=True)
class Member:
    """A user with a bearer token of theirs."""

    id: int
    username: str
    token: str


async def call(
    client: Client, method: str, path: str, *, token: str | None = None, json: Any = None
) -> Answer:
    """Send one request, with ``token`` as a bearer token; return status and JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    kwargs: dict[str, Any] = {"json": json} if json is not None else {}
    response = await client.open(path, method=method, headers=headers, **kwargs)
    body = await response.get_json() if response.mimetype == "application/json" else None
    return Answer(response.status_code, body)


async def sign_in(client: Client, username: str, password: str) -> Answer:
    """``POST /api/tokens``: 201 with a token, or 401."""
    return await call(
        client, "POST", "/api/tokens", json={"username": username, "password": password}
    )


async def token_for(client: Client, username: str, password: str) -> str:
    """A fresh bearer token; the sign-in must succeed."""
    answer = await sign_in(client, username, password)
    assert answer.status == 201, answer
    token: str = answer.body["token"]
    return token


async def new_user(
    client: Client, boss_token: str, username: str, password: str, user_type: UserType
) -> Member:
    """Create a user through the admin API and sign them in."""
    created = await call(
        client,
        "POST",
        "/api/admin/users",
        token=boss_token,
        json={"username": username, "password": password, "user_type": user_type.value},
    )
    assert created.status == 201, created
    return Member(created.body["id"], username, await token_for(client, username, password))


def statuses(answers: Iterable[Answer]) -> list[int]:
    """The status codes of *answers*, in order."""
    return [answer.status for answer in answers]


async def during(
    change: Awaitable[Answer],
    request: Callable[[], Awaitable[Answer]],
    workers: int,
    seed: int,
) -> tuple[Answer, list[Answer]]:
    """Run *change* while *workers* loops send *request* back to back until it answers.

    The loops keep going for the whole change, so whatever the change does between
    its reads and its writes, some request is caught in the middle. Pauses of up to a
    few milliseconds (random, from *seed*) before every request keep the loops out of
    step with each other and with the change; in lockstep they would all hit the same
    moment of it, round after round.
    """
    done = asyncio.Event()
    jitter = random.Random(seed)  # noqa: S311 - timing, not secrets

    async def repeat() -> list[Answer]:
        answers = []
        while not done.is_set():
            await asyncio.sleep(jitter.uniform(0, JITTER_SECONDS))
            answers.append(await request())
        return answers

    loops = asyncio.gather(*(repeat() for _ in range(workers)))
    await asyncio.sleep(jitter.uniform(0, JITTER_SECONDS))
    try:
        answer = await change
    finally:
        done.set()
    return answer, [a for loop in await loops for a in loop]


def report(broken: list[str], rounds: int) -> str:
    """The failure message: how many rounds broke a rule, and the first few."""
    shown = "\n".join(broken[:5]) + ("\n..." if len(broken) > 5 else "")
    return f"{len(broken)}/{rounds} rounds broke the rule:\n{shown}"


# --- 1. Two admins acting on each other never leave zero active admins --------------

ACTIONS: dict[str, tuple[str, dict[str, object] | None, int]] = {
    # action: (method, body, success status)
    "demote": ("PATCH", {"user_type": "user"}, 200),
    "deactivate": ("PATCH", {"is_active": False}, 200),
    "delete": ("DELETE", None, 204),
}


async def admin_pair(app: Quart, client: Client, n: int, previous: list[Member]) -> list[Member]:
    """Two new admins, A and B, that are the only active admins once this returns.

    An admin left over from the previous round creates them, then A deletes every
    earlier admin. When the previous round left none (the bug), one is stored directly,
    as the CLI would, and removed the same way.
    """
    if not previous:
        boot = await add_user(app, f"boot-{n}", ADMIN_PASSWORD, UserType.ADMIN)
        token = await token_for(client, boot.username, ADMIN_PASSWORD)
        previous = [Member(boot.id, boot.username, token)]
    pair = [
        await new_user(client, previous[0].token, f"adm-{n}-{x}", ADMIN_PASSWORD, UserType.ADMIN)
        for x in "ab"
    ]
    for old in previous:
        removed = await call(client, "DELETE", f"/api/admin/users/{old.id}", token=pair[0].token)
        assert removed.status == 204, removed
    assert await listed_active_admins(client, pair[0].token) == {m.id for m in pair}
    return pair


async def listed_active_admins(client: Client, token: str) -> set[int]:
    """The ids of every active admin, read page by page from the admin API."""
    ids: set[int] = set()
    offset, total = 0, 1
    while offset < total:
        page = await call(client, "GET", f"/api/admin/users?limit=100&offset={offset}", token=token)
        assert page.status == 200, page
        ids |= {u["id"] for u in page.body["items"] if u["user_type"] == "admin" and u["is_active"]}
        offset, total = offset + 100, page.body["total"]
    return ids


async def still_active_admins(client: Client, pair: list[Member]) -> list[Member]:
    """Those of *pair* who can still use the admin API and are shown as active admins."""
    alive = []
    for member in pair:
        seen = await call(client, "GET", f"/api/admin/users/{member.id}", token=member.token)
        if seen.status == 200 and (seen.body["user_type"], seen.body["is_active"]) == (
            "admin",
            True,
        ):
            alive.append(member)
    return alive


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_admins_acting_on_each_other_at_once_leave_an_active_admin(
    race_app: Quart, action: str
) -> None:
    """Two admins, the only ones, demote / deactivate / delete each other at once.

    Proves the last-admin rule holds under concurrency: afterwards at least one of
    them is still an active admin (seen through the admin API with their own token),
    and each request succeeds or is refused with 409 (401/403 when the other's change
    landed before this request was authorised), never a 500.
    """
    method, body, success = ACTIONS[action]
    allowed = {success, 409, 401, 403}
    client = race_app.test_client()
    survivors: list[Member] = []
    broken: list[str] = []
    for n in range(ADMIN_ROUNDS):
        a, b = await admin_pair(race_app, client, n, survivors)
        answers = await asyncio.gather(
            call(client, method, f"/api/admin/users/{b.id}", token=a.token, json=body),
            call(client, method, f"/api/admin/users/{a.id}", token=b.token, json=body),
        )
        survivors = await still_active_admins(client, [a, b])
        got = statuses(answers)
        if not survivors or not set(got) <= allowed:
            broken.append(f"round {n}: answers {got}, active admins left: {len(survivors)}")
    assert not broken, report(broken, ADMIN_ROUNDS)


# --- 2. A password change ends every sign-in made with the old password --------------


async def test_password_change_ends_sign_ins_racing_it(hashing_app: Quart) -> None:
    """Sign-ins with the old password race a password change.

    Proves that once the change has answered 204, no token obtained with the old
    password works (``GET /api/me`` is 401), including those issued while the change
    was in flight; each racing sign-in answers 201 or 401, never a 500. The session
    that made the change stays signed in.
    """
    client = hashing_app.test_client()
    user = await add_user(hashing_app, "alice", USER_PASSWORD, UserType.USER)
    own_token = await token_for(client, user.username, USER_PASSWORD)
    old = USER_PASSWORD
    broken: list[str] = []
    for n in range(PASSWORD_ROUNDS):
        new = f"new-password-{n}"
        change = call(
            client,
            "POST",
            "/api/me/password",
            token=own_token,
            json={"current_password": old, "new_password": new},
        )
        changed, answers = await during(
            change, partial(sign_in, client, user.username, old), SIGN_IN_WORKERS, seed=n
        )
        assert changed.status == 204, changed
        old = new
        live = [
            answer
            for answer in answers
            if answer.status == 201
            and (await call(client, "GET", "/api/me", token=answer.body["token"])).status != 401
        ]
        unexpected = [s for s in statuses(answers) if s not in {201, 401}]
        if live or unexpected:
            broken.append(
                f"round {n}: {len(live)} old-password tokens still work, "
                f"unexpected answers {unexpected}"
            )
        me = await call(client, "GET", "/api/me", token=own_token)
        assert me.status == 200, f"round {n}: the session that changed the password ended"
    assert not broken, report(broken, PASSWORD_ROUNDS)


# --- 3. Things created while their owner is deleted ---------------------------------

ORPHANS = text(
    "SELECT count(*) FROM things WHERE NOT EXISTS "
    "(SELECT 1 FROM users WHERE users.id = things.owner_id)"
)


async def test_things_created_while_their_owner_is_deleted(
    race_app: Quart, stored: AsyncEngine
) -> None:
    """A user creates things while an admin deletes that user.

    Proves the owner's foreign key is handled, not crashed on: each create answers
    201, 401, 404 or 409 (never a 500), the delete 204 (or 409); afterwards no thing
    is left without its owner, and a thing that answered 201 is gone with its owner
    if the owner was deleted, else still there for them.
    """
    client = race_app.test_client()
    root = await add_user(race_app, "root", ADMIN_PASSWORD, UserType.ADMIN)
    admin_token = await token_for(client, root.username, ADMIN_PASSWORD)
    broken: list[str] = []
    for n in range(OWNER_ROUNDS):
        owner = await new_user(client, admin_token, f"owner-{n}", USER_PASSWORD, UserType.USER)
        delete = call(client, "DELETE", f"/api/admin/users/{owner.id}", token=admin_token)
        create = partial(
            call, client, "POST", "/api/things", token=owner.token, json={"title": f"t{n}"}
        )
        deleted, made = await during(delete, create, CREATE_WORKERS, seed=n)
        refused = Counter(s for s in statuses(made) if s not in {201, 401, 404, 409})
        problems = [f"{count} creates answered {s}" for s, count in sorted(refused.items())]
        if deleted.status not in {204, 409}:
            problems.append(f"delete answered {deleted.status}")
        created_ids = [answer.body["id"] for answer in made if answer.status == 201]
        if deleted.status == 204:
            gone = await call(client, "GET", f"/api/admin/users/{owner.id}", token=admin_token)
            if gone.status != 404:
                problems.append(f"deleted owner still answers {gone.status}")
            async with stored.connect() as connection:
                left = (
                    await connection.execute(
                        text("SELECT count(*) FROM things WHERE owner_id = :owner"),
                        {"owner": owner.id},
                    )
                ).scalar_one()
            if left:
                problems.append(f"{left} things outlived their deleted owner")
        else:
            for thing_id in created_ids:
                seen = await call(client, "GET", f"/api/things/{thing_id}", token=owner.token)
                if seen.status != 200:
                    problems.append(f"thing {thing_id} answered 201 but is now {seen.status}")
        if problems:
            broken.append(f"round {n}: " + "; ".join(problems))
    async with stored.connect() as connection:
        orphans = (await connection.execute(ORPHANS)).scalar_one()
    assert not orphans, f"{orphans} things have no owner"
    assert not broken, f"{len(broken)}/{OWNER_ROUNDS} rounds broke the rule:\n" + "\n".join(broken)
