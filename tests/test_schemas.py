"""Request body and query models: bounds hold for every input, not just the examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from quart_app.web.schemas import PageQuery, ThingCreate, ThingUpdate, UserCreate


def in_bounds(limit: int, offset: int) -> bool:
    return 1 <= limit <= 100 and 0 <= offset <= 1_000_000_000


@given(st.integers(), st.integers())
def test_page_query_accepts_exactly_the_bounded_pages(limit: int, offset: int) -> None:
    # Query strings arrive as text: validate the strings a client would send.
    query = {"limit": str(limit), "offset": str(offset)}
    if in_bounds(limit, offset):
        page = PageQuery.model_validate(query)
        assert (page.limit, page.offset) == (limit, offset)
    else:
        with pytest.raises(ValidationError):
            PageQuery.model_validate(query)


@given(st.text().filter(lambda text: not text.strip().lstrip("+-").isdigit()))
def test_page_query_refuses_non_numbers(text: str) -> None:
    with pytest.raises(ValidationError):
        PageQuery.model_validate({"limit": text})


@given(st.dictionaries(st.text(), st.integers()).filter(lambda d: set(d) - {"limit", "offset"}))
def test_page_query_refuses_unknown_parameters(query: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PageQuery.model_validate(query)


def has_control_characters(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


@given(st.text())
def test_any_accepted_title_is_trimmed_clean_and_bounded(title: str) -> None:
    try:
        thing = ThingCreate.model_validate({"title": title})
    except ValidationError:
        return
    assert 1 <= len(thing.title) <= 200
    assert thing.title in title
    assert thing.title == thing.title.strip()
    assert not has_control_characters(thing.title)


CLEAN_TEXT = st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"])


@given(st.text(alphabet=CLEAN_TEXT, min_size=1, max_size=200))
def test_every_clean_title_of_valid_length_is_accepted_unchanged(title: str) -> None:
    assert ThingCreate.model_validate({"title": title}).title == title


@given(st.text(alphabet=CLEAN_TEXT, min_size=201, max_size=300))
def test_titles_over_200_characters_are_refused(title: str) -> None:
    with pytest.raises(ValidationError):
        ThingCreate.model_validate({"title": title})


@given(st.dictionaries(st.sampled_from(["title", "done"]), st.none()))
def test_patch_bodies_never_accept_null_or_nothing(body: dict[str, None]) -> None:
    with pytest.raises(ValidationError):
        ThingUpdate.model_validate(body)


@given(st.text())
def test_new_usernames_are_3_to_32_safe_ascii_characters(name: str) -> None:
    try:
        user = UserCreate.model_validate({"username": name, "password": "long-enough"})
    except ValidationError:
        assert not (
            3 <= len(name) <= 32
            and all(char.isascii() and (char.isalnum() or char in "_.-") for char in name)
        )
    else:
        assert user.username == name
