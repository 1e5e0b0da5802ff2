"""Request and response bodies of the JSON API, with their limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from quart_app.data.usernames import USERNAME_PATTERN

# Text stored or looked up in the database: no control characters (PostgreSQL cannot
# store NUL, and none belongs in a name or a title).
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"

Username = Annotated[str, StringConstraints(pattern=rf"^{USERNAME_PATTERN}$")]
# Login accepts any name up to the column width, so a bad name is a 401, not a 422 hint.
LoginName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=NO_CONTROL_CHARACTERS)
]
# 256 characters is far beyond any passphrase and keeps argon2's input bounded.
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
NewPassword = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Title = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS
    ),
]
UserTypeName = Literal["admin", "user"]


class Strict(BaseModel):
    """A request body: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def _publish_partial_update(schema: JsonDict) -> None:
    """What a client may send in a PATCH body: at least one field, each one optional
    (absent leaves it as it is) and never ``null``.

    Pydantic publishes each field's Python default, ``None``, as ``default: null``: a value
    the field's own schema refuses (as does the API, with a 422), so the default goes.
    """
    schema["minProperties"] = 1
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for field in properties.values():
            if isinstance(field, dict) and "default" in field and field["default"] is None:
                del field["default"]


class PartialUpdate(Strict):
    """A PATCH body: at least one field, and none of them ``null``.

    Fields are typed ``X | SkipJsonSchema[None] = None``: ``None`` stands for "not given"
    in Python, while the published schema says what clients may send, an optional
    non-null value with no default.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_publish_partial_update)

    @model_validator(mode="after")
    def _some_fields_and_no_nulls(self) -> Self:
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class Credentials(Strict):
    """A username and password, for ``/api/login`` and ``/api/tokens``."""

    username: LoginName
    password: Password


class PasswordChange(Strict):
    """The signed-in user's current and new password."""

    current_password: Password
    new_password: NewPassword


class UserCreate(Strict):
    """An admin's new user."""

    username: Username
    password: NewPassword
    user_type: UserTypeName = "user"


class UserUpdate(PartialUpdate):
    """An admin's change to a user."""

    user_type: UserTypeName | SkipJsonSchema[None] = None
    is_active: StrictBool | SkipJsonSchema[None] = None
    password: NewPassword | SkipJsonSchema[None] = None


class ThingCreate(Strict):
    """A new to-do item."""

    title: Title
    done: StrictBool = False


class ThingUpdate(PartialUpdate):
    """A change to a to-do item."""

    title: Title | SkipJsonSchema[None] = None
    done: StrictBool | SkipJsonSchema[None] = None


class PageQuery(Strict):
    """``?limit=&offset=`` of a list; the page size is bounded."""

    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    user_type: UserTypeName
    is_active: bool
    created_at: datetime
    updated_at: datetime


class UserEnvelope(BaseModel):
    """``{"user": {...}}``."""

    user: UserOut


class UserPage(BaseModel):
    """One page of users."""

    items: list[UserOut]
    total: int
    limit: int
    offset: int


class ThingOut(BaseModel):
    """A to-do item as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    done: bool
    created_at: datetime
    updated_at: datetime


class ThingPage(BaseModel):
    """One page of things, newest first."""

    items: list[ThingOut]
    total: int
    limit: int
    offset: int


class TokenOut(BaseModel):
    """A new bearer token."""

    token: str
    expires_at: datetime


class StatusOut(BaseModel):
    """``{"success": true}``, the seed's answer."""

    success: bool


class DoThingOut(BaseModel):
    """The seed's 201 answer."""

    message: str
    code: str


class HealthOut(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class ReadyOut(BaseModel):
    """The database answers."""

    status: Literal["ready"]


class CreatedHeaders(BaseModel):
    """Where the created resource lives."""

    location: str


class TotalCountHeaders(BaseModel):
    """How many items the whole list holds."""

    x_total_count: int


class Error(BaseModel):
    """An error: what went wrong and, on a 422, what is wrong with each field."""

    error: str
    fields: dict[str, str] | None = None
