"""URL matching: ids are ASCII digits, and repeated slashes are not merged by a redirect."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.apps import Client

ASCII_DIGITS = "0123456789"
ARABIC_INDIC = str.maketrans(ASCII_DIGITS, "".join(chr(0x0660 + n) for n in range(10)))
FULLWIDTH = str.maketrans(ASCII_DIGITS, "".join(chr(0xFF10 + n) for n in range(10)))


@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH], ids=["arabic-indic", "fullwidth"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_non_ascii_digits_name_no_thing(
    user_client: Client, digits: dict[int, str], method: str
) -> None:
    created = await user_client.post("/api/things", json={"title": "only one URL"})
    thing_id = str((await created.get_json())["id"])
    kwargs: dict[str, Any] = {"json": {"done": True}} if method == "PATCH" else {}
    response = await user_client.open(
        f"/api/things/{thing_id.translate(digits)}", method=method, **kwargs
    )
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    unchanged = await user_client.get(f"/api/things/{thing_id}")
    assert unchanged.status_code == 200
    assert (await unchanged.get_json())["done"] is False


async def test_non_ascii_digits_name_no_user(admin_client: Client) -> None:
    response = await admin_client.get("/api/admin/users/" + "1".translate(ARABIC_INDIC))
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/api//things", "/api/things//", "//api/things/1"])
async def test_repeated_slashes_are_not_redirected(user_client: Client, path: str) -> None:
    response = await user_client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert "Location" not in response.headers
