"""Username normalisation: one account per name, whatever the letter case."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quart_app.data.accounts import UsernameTakenError, find_user
from quart_app.data.models import UserType
from quart_app.data.usernames import username_key
from quart_app.security.credentials import create_user
from tests.helpers.apps import make_app
from tests.helpers.services import reset_schema

USERNAMES = st.from_regex(r"\A[A-Za-z0-9_.-]{3,32}\Z")


def case_variants(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flips: "".join(
            char.upper() if flip else char.lower() for char, flip in zip(name, flips, strict=True)
        )
    )


@given(USERNAMES.flatmap(lambda name: st.tuples(st.just(name), case_variants(name))))
def test_the_key_ignores_case_and_is_stable(pair: tuple[str, str]) -> None:
    name, variant = pair
    assert username_key(name) == username_key(variant)
    assert username_key(username_key(name)) == username_key(name)
    assert username_key(f"  {name} ") == username_key(name)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(USERNAMES.flatmap(lambda name: st.tuples(st.just(name), case_variants(name))))
def test_a_case_variant_finds_the_account_and_cannot_register_again(
    tmp_path: Path, pair: tuple[str, str]
) -> None:
    name, variant = pair
    url = f"sqlite+aiosqlite:///{tmp_path / f'{uuid4().hex}.sqlite3'}"

    async def scenario() -> None:
        await reset_schema(url)
        app = make_app(url)
        async with app.test_app(), app.app_context():
            created = await create_user(name, "a-long-password")
            found = await find_user(variant)
            assert found is not None
            assert found.id == created.id
            assert found.username == name  # shown as it was typed
            try:
                await create_user(variant, "another-password", UserType.USER)
            except UsernameTakenError:
                pass
            else:
                raise AssertionError(f"{variant!r} registered next to {name!r}")

    asyncio.run(scenario())
