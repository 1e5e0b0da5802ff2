"""A client generated from the live /openapi.json parses every answer the document lists.

openapi-python-client generates a package from the document a real server serves;
the test asserts the generator warned about nothing, imports the package and uses it
against that server: signs in, works through things and users, and provokes the
documented errors. Every answer must come back parsed into the generated model of
its status (an ``Error`` for each error), never left unparsed. Undocumented statuses
raise (``raise_on_unexpected_status``).

A generated client cannot send what earns a 400, 413 or 415 (it always sends its
model as JSON), and a 503 needs the database gone: tests/test_openapi_statuses.py
provokes those, and every other documented status, with hand-made requests.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from quart_app.security.rate_limits import SIGN_IN_LIMITS, submitted_username
from tests.helpers.live import ADMIN_LIVE_PASSWORD
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.live

PACKAGE = "quart_app_client"
GENERATOR_CONFIG = {
    "project_name_override": PACKAGE,
    "package_name_override": PACKAGE,
    # The default hooks run ruff from PATH on the generated code; its style is not tested.
    "post_hooks": [],
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One backend is enough: the document and its parsing do not depend on it."""
    return f"sqlite+aiosqlite:///{tmp_path / 'client.sqlite3'}"


@dataclass
class Generated:
    """The generated package: its clients, models and one module per operation."""

    client: ModuleType
    models: ModuleType

    def operation(self, name: str) -> Any:
        """The module of operation *name* (its operationId)."""
        return importlib.import_module(f"{PACKAGE}.api.default.{name}")


@pytest.fixture
def generated(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Generated]:
    """The client generated from the live server's document, imported."""
    config = tmp_path / "generator.json"
    config.write_text(json.dumps(GENERATOR_CONFIG))
    packages = tmp_path / "generated"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--url",
            f"{base_url}/openapi.json",
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(packages / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    monkeypatch.syspath_prepend(str(packages))
    try:
        yield Generated(
            client=importlib.import_module(f"{PACKAGE}.client"),
            models=importlib.import_module(f"{PACKAGE}.models"),
        )
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def parsed(response: Any, status: int, model: type) -> Any:
    """The body of *response*, after checking it is *status*, parsed into *model*."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, model), (status, response.parsed)
    return response.parsed


def no_content(response: Any) -> None:
    """*response* is a 204 with no body (the one answer with nothing to parse)."""
    assert response.status_code == 204
    assert response.content == b""
    assert response.parsed is None


@pytest.fixture
async def anonymous(generated: Generated, base_url: str) -> AsyncIterator[Any]:
    async with generated.client.Client(base_url=base_url, raise_on_unexpected_status=True) as c:
        yield c


async def signed_in(
    generated: Generated, anonymous: Any, base_url: str, username: str, password: str
) -> Any:
    """An ``AuthenticatedClient`` with a fresh token for *username*."""
    create_token = generated.operation("post_create_token")
    credentials = generated.models.Credentials(username=username, password=password)
    issued = await create_token.asyncio_detailed(client=anonymous, body=credentials)
    token = parsed(issued, 201, generated.models.TokenOut)
    assert isinstance(token.expires_at, datetime)
    return generated.client.AuthenticatedClient(
        base_url=base_url, token=token.token, raise_on_unexpected_status=True
    )


async def test_a_generated_client_parses_every_answer(
    generated: Generated, anonymous: Any, base_url: str
) -> None:
    await public_operations(generated, anonymous)
    await cookie_sign_in_and_out(generated, base_url)
    await things_and_their_errors(generated, anonymous, base_url)
    await users_and_their_errors(generated, anonymous, base_url)
    # Last: it uses up sign-in attempts.
    await sign_in_errors(generated, anonymous, base_url)


async def public_operations(generated: Generated, anonymous: Any) -> None:
    models = generated.models
    status = await generated.operation("get_status").asyncio_detailed(client=anonymous)
    assert parsed(status, 200, models.StatusOut).success is True
    done = await generated.operation("get_do_thing").asyncio_detailed(client=anonymous)
    assert parsed(done, 201, models.DoThingOut).code == "SUCCESS"
    healthy = await generated.operation("get_healthz").asyncio_detailed(client=anonymous)
    assert parsed(healthy, 200, models.HealthOut).status == "ok"
    ready = await generated.operation("get_readyz").asyncio_detailed(client=anonymous)
    assert parsed(ready, 200, models.ReadyOut).status == "ready"


async def sign_in_errors(generated: Generated, anonymous: Any, base_url: str) -> None:
    models = generated.models
    create_token = generated.operation("post_create_token")

    def credentials(username: str, password: str) -> Any:
        return models.Credentials(username=username, password=password)

    wrong = await create_token.asyncio_detailed(
        client=anonymous, body=credentials("admin", "wrong-password")
    )
    assert parsed(wrong, 401, models.Error).error == "Invalid username or password"
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="quart_app"'

    invalid = await create_token.asyncio_detailed(client=anonymous, body=credentials("", "x"))
    assert "username" in parsed(invalid, 422, models.Error).fields.additional_properties

    # What a browser says of a request another site made: the CSRF rule refuses it.
    async with generated.client.Client(
        base_url=base_url,
        headers={"Sec-Fetch-Site": "cross-site"},
        raise_on_unexpected_status=True,
    ) as cross_site:
        refused = await generated.operation("post_logout").asyncio_detailed(client=cross_site)
    assert parsed(refused, 403, models.Error).error == "Cross-site request refused"

    # Ten attempts a minute per username, in each worker (the store is per process).
    async def refused_attempt() -> Any:
        answer = await create_token.asyncio_detailed(
            client=anonymous, body=credentials("nobody", "wrong-password")
        )
        if answer.status_code == 401:
            parsed(answer, 401, models.Error)
            return None
        return answer

    answer = await eventually(
        refused_attempt, within=60, every=0, what="a sign-in attempt not refused as 401"
    )
    parsed(answer, 429, models.Error)
    # GCRA (quart-rate-limiter): a refused attempt may retry once one attempt's share of
    # the username limit's period has passed since the tenth, so Retry-After is whole
    # seconds from 1 to period / count (6).
    retry_after = answer.headers["Retry-After"]
    assert re.fullmatch("[0-9]+", retry_after), retry_after
    by_username = SIGN_IN_LIMITS[0]
    assert by_username.key_function is submitted_username
    assert 1 <= int(retry_after) <= math.ceil(by_username.inverse) == 6


async def cookie_sign_in_and_out(generated: Generated, base_url: str) -> None:
    models = generated.models
    logout = generated.operation("post_logout")
    credentials = models.Credentials(username="admin", password=ADMIN_LIVE_PASSWORD)
    async with generated.client.Client(base_url=base_url, raise_on_unexpected_status=True) as fresh:
        login = await generated.operation("post_login").asyncio_detailed(
            client=fresh, body=credentials
        )
        assert parsed(login, 200, models.UserEnvelope).user.username == "admin"
        cookies = dict(fresh.get_async_httpx_client().cookies.items())
        # With the cookie, a write must show where it comes from (the CSRF rule).
        unverified = await logout.asyncio_detailed(client=fresh)
        refusal = parsed(unverified, 403, models.Error).error
        assert refusal == "The request's origin could not be verified"
    async with generated.client.Client(
        base_url=base_url,
        cookies=cookies,
        headers={"Origin": base_url},
        raise_on_unexpected_status=True,
    ) as same_origin:
        me = await generated.operation("get_me").asyncio_detailed(client=same_origin)
        assert parsed(me, 200, models.UserEnvelope).user.username == "admin"
        no_content(await logout.asyncio_detailed(client=same_origin))
    async with generated.client.Client(
        base_url=base_url, cookies=cookies, raise_on_unexpected_status=True
    ) as signed_out:
        ended = await generated.operation("get_me").asyncio_detailed(client=signed_out)
        parsed(ended, 401, models.Error)


async def things_and_their_errors(generated: Generated, anonymous: Any, base_url: str) -> None:
    models = generated.models
    op = generated.operation
    async with await signed_in(
        generated, anonymous, base_url, "admin", ADMIN_LIVE_PASSWORD
    ) as client:
        made = await op("post_create_thing").asyncio_detailed(
            client=client, body=models.ThingCreate(title="Buy milk")
        )
        thing = parsed(made, 201, models.ThingOut)
        assert made.headers["Location"] == f"/api/things/{thing.id}"

        page = await op("get_list_things").asyncio_detailed(client=client, limit=10, offset=0)
        assert [item.id for item in parsed(page, 200, models.ThingPage).items] == [thing.id]
        assert page.headers["X-Total-Count"] == "1"

        got = await op("get_get_thing").asyncio_detailed(thing.id, client=client)
        assert parsed(got, 200, models.ThingOut).title == "Buy milk"

        changed = await op("patch_update_thing").asyncio_detailed(
            thing.id, client=client, body=models.ThingUpdate(done=True)
        )
        assert parsed(changed, 200, models.ThingOut).done is True

        invalid = await op("post_create_thing").asyncio_detailed(
            client=client, body=models.ThingCreate(title=" ")
        )
        assert "title" in parsed(invalid, 422, models.Error).fields.additional_properties

        bad_page = await op("get_list_things").asyncio_detailed(client=client, limit=1000)
        assert "limit" in parsed(bad_page, 422, models.Error).fields.additional_properties

        no_content(await op("delete_delete_thing").asyncio_detailed(thing.id, client=client))
        gone = await op("get_get_thing").asyncio_detailed(thing.id, client=client)
        assert parsed(gone, 404, models.Error).error == "Thing not found"
        again = await op("delete_delete_thing").asyncio_detailed(thing.id, client=client)
        parsed(again, 404, models.Error)

        no_content(await op("delete_revoke_current_token").asyncio_detailed(client=client))
        revoked = await op("get_me").asyncio_detailed(client=client)
        parsed(revoked, 401, models.Error)
        assert revoked.headers["WWW-Authenticate"] == 'Bearer realm="quart_app"'


async def users_and_their_errors(generated: Generated, anonymous: Any, base_url: str) -> None:
    models = generated.models
    op = generated.operation
    async with await signed_in(
        generated, anonymous, base_url, "admin", ADMIN_LIVE_PASSWORD
    ) as admin:
        new_user = models.UserCreate(username="carol", password="carol-password")
        made = await op("post_create").asyncio_detailed(client=admin, body=new_user)
        carol = parsed(made, 201, models.UserOut)
        assert made.headers["Location"] == f"/api/admin/users/{carol.id}"
        taken = await op("post_create").asyncio_detailed(client=admin, body=new_user)
        assert parsed(taken, 409, models.Error).error == "That username is taken"

        users = await op("get_list_users").asyncio_detailed(client=admin)
        names = [user.username for user in parsed(users, 200, models.UserPage).items]
        assert names == ["admin", "carol"]
        got = await op("get_get").asyncio_detailed(carol.id, client=admin)
        assert parsed(got, 200, models.UserOut).user_type == "user"

        async with await signed_in(
            generated, anonymous, base_url, "carol", "carol-password"
        ) as as_carol:
            me = await op("get_me").asyncio_detailed(client=as_carol)
            assert parsed(me, 200, models.UserEnvelope).user.id == carol.id
            not_admin = await op("get_list_users").asyncio_detailed(client=as_carol)
            assert parsed(not_admin, 403, models.Error).error == "Admin access is required"
            wrong = models.PasswordChange(current_password="nope", new_password="carol-new-pass")
            refused = await op("post_change_password").asyncio_detailed(client=as_carol, body=wrong)
            assert parsed(refused, 403, models.Error).error == "The current password is wrong"
            right = models.PasswordChange(
                current_password="carol-password", new_password="carol-new-pass"
            )
            no_content(
                await op("post_change_password").asyncio_detailed(client=as_carol, body=right)
            )

        deactivated = await op("patch_update").asyncio_detailed(
            carol.id, client=admin, body=models.UserUpdate(is_active=False)
        )
        assert parsed(deactivated, 200, models.UserOut).is_active is False
        me = await op("get_me").asyncio_detailed(client=admin)
        admin_id = parsed(me, 200, models.UserEnvelope).user.id
        last_admin = await op("delete_delete").asyncio_detailed(admin_id, client=admin)
        assert parsed(last_admin, 409, models.Error).error == "This would leave no active admin"
        no_content(await op("delete_delete").asyncio_detailed(carol.id, client=admin))
        missing = await op("get_get").asyncio_detailed(carol.id, client=admin)
        assert parsed(missing, 404, models.Error).error == "User not found"
