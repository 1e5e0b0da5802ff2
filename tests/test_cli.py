"""The ``quart --app quart_app`` commands, run through Quart's CLI runner on each backend."""

from __future__ import annotations

import asyncio
import re

import pytest
from click.testing import Result
from quart import Quart

from tests.helpers.apps import make_app
from tests.helpers.services import reset_schema


@pytest.fixture
def cli_app(database_url: str) -> Quart:
    """An app on an empty database: not even the tables exist."""
    asyncio.run(reset_schema(database_url, create=False))
    return make_app(database_url)


def run(app: Quart, *args: str, stdin: str | None = None) -> Result:
    result: Result = app.test_cli_runner().invoke(args=list(args), input=stdin)
    return result


def login_status(app: Quart, username: str, password: str) -> int:
    async def attempt() -> int:
        async with app.test_app():
            response = await app.test_client().post(
                "/api/login", json={"username": username, "password": password}
            )
            return response.status_code

    return asyncio.run(attempt())


def users(app: Quart) -> list[list[str]]:
    result = run(app, "list-users")
    assert result.exit_code == 0, result.output
    return [line.split("\t")[1:] for line in result.output.splitlines()]


def test_init_db_creates_the_admin_from_admin_password(
    cli_app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", "from-the-environment")
    result = run(cli_app, "init-db")
    assert result.exit_code == 0, result.output
    assert "from-the-environment" not in result.output
    assert users(cli_app) == [["admin", "admin", "active"]]
    assert login_status(cli_app, "admin", "from-the-environment") == 200


def test_init_db_prints_a_random_password_once(
    cli_app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    first = run(cli_app, "init-db")
    assert first.exit_code == 0, first.output
    match = re.search(r"password: (\S+)", first.output)
    assert match is not None
    second = run(cli_app, "init-db")
    assert second.exit_code == 0
    assert "password" not in second.output
    assert users(cli_app) == [["admin", "admin", "active"]]
    assert login_status(cli_app, "admin", match.group(1)) == 200


def test_init_db_keeps_existing_data(cli_app: Quart, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", "from-the-environment")
    run(cli_app, "init-db")
    run(cli_app, "create-user", "bob", "--password-stdin", stdin="bob-password\n")
    assert run(cli_app, "init-db").exit_code == 0
    assert [row[0] for row in users(cli_app)] == ["admin", "bob"]


@pytest.fixture
def ready_app(cli_app: Quart, monkeypatch: pytest.MonkeyPatch) -> Quart:
    monkeypatch.setenv("ADMIN_PASSWORD", "admin-password")
    assert run(cli_app, "init-db").exit_code == 0
    return cli_app


def test_create_user_from_stdin(ready_app: Quart) -> None:
    result = run(ready_app, "create-user", "Bob", "--password-stdin", stdin="bob-password\n")
    assert result.exit_code == 0, result.output
    assert "Created user 'Bob'" in result.output
    assert users(ready_app)[1] == ["Bob", "user", "active"]
    assert login_status(ready_app, "bob", "bob-password") == 200


def test_create_admin_from_the_prompt(ready_app: Quart) -> None:
    result = run(ready_app, "create-user", "carol", "--admin", stdin="carol-pass\ncarol-pass\n")
    assert result.exit_code == 0, result.output
    assert users(ready_app)[1] == ["carol", "admin", "active"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create-user", "ADMIN", "--password-stdin"], "long-enough\n", "is taken"),
        (["create-user", "dave", "--password-stdin"], "short\n", "8 to 256 characters"),
        (["create-user", "bad name", "--password-stdin"], "long-enough\n", "3 to 32 letters"),
        (["set-user-type", "nobody", "admin"], None, "No user called 'nobody'"),
        (["set-user-type", "admin", "user"], None, "no active admin"),
        (["deactivate-user", "admin"], None, "no active admin"),
    ],
)
def test_refusals_exit_non_zero_and_change_nothing(
    ready_app: Quart, args: list[str], stdin: str | None, message: str
) -> None:
    result = run(ready_app, *args, stdin=stdin)
    assert result.exit_code == 1
    assert message in result.output
    assert users(ready_app) == [["admin", "admin", "active"]]


def test_set_user_type_and_deactivate(ready_app: Quart) -> None:
    run(ready_app, "create-user", "erin", "--password-stdin", stdin="erin-password\n")
    assert run(ready_app, "set-user-type", "erin", "admin").exit_code == 0
    assert users(ready_app)[1] == ["erin", "admin", "active"]
    assert run(ready_app, "set-user-type", "ERIN", "user").exit_code == 0
    assert run(ready_app, "deactivate-user", "erin").exit_code == 0
    assert users(ready_app)[1] == ["erin", "user", "inactive"]
    assert login_status(ready_app, "erin", "erin-password") == 401
