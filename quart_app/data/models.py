"""The tables (users, their sign-in sessions, their things, the log of changes to them) and
the user record views read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quart_app.data.base import Base, UTCDateTime, utcnow
from quart_app.data.statements import Row

# SQLite's AUTOINCREMENT: a deleted row's id is never handed out again, so a stale
# Location (/api/things/7 after thing 7 was deleted) never names a newer row. Without it
# SQLite takes max(id) + 1; PostgreSQL's sequences never reuse an id anyway.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class UserType(StrEnum):
    """What a user may do: ``admin`` passes ``admin_required``."""

    ADMIN = "admin"
    USER = "user"


class SessionKind(StrEnum):
    """How a session's id travels: in the auth cookie or as a bearer token."""

    COOKIE = "cookie"
    TOKEN = "token"  # noqa: S105 - a label, not a password


class User(Base):
    """A person who can sign in."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("user_type IN ('admin', 'user')", name="user_type"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    # Lower-cased copy: makes "Alice" and "alice" the same account on every backend.
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    user_type: Mapped[str] = mapped_column(String(8), default=UserType.USER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    sessions: Mapped[list[AuthSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    things: Mapped[list[Thing]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_admin(self) -> bool:
        """True for an active admin."""
        return self.is_active and self.user_type == UserType.ADMIN


class AuthSession(Base):
    """A sign-in. Only a SHA-256 of its id is stored, so a database leak grants nothing."""

    __tablename__ = "auth_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship(back_populates="sessions")


class Thing(Base):
    """One to-do item, owned by a user."""

    __tablename__ = "things"
    # Serves the list query (owner's things, newest id first) from the index alone.
    __table_args__ = (Index("ix_things_owner_id_id", "owner_id", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(back_populates="things")


class Event(Base):
    """One change, kept so a live stream can replay what it missed.

    A user's event (``user_id`` set) is a change to their things or to their access;
    an event without a user is for the admins' stream (a user created, changed or
    deleted), and outlives the user it is about.

    Its id is the stream's ``id:``. Ids are handed out in the order the changes commit
    (``data.events.append_event``), so everything up to an id seen has been seen.
    """

    __tablename__ = "events"
    # Serves a stream's replay: the user's events after the last id it saw, in order.
    __table_args__ = (Index("ix_events_user_id_id", "user_id", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # The JSON of the REST answer for the change (for a deletion, the id alone).
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The user's columns a view may show; never the password hash.
ACCOUNT_COLUMNS = (
    User.id,
    User.username,
    User.user_type,
    User.is_active,
    User.created_at,
    User.updated_at,
)


@dataclass(frozen=True, slots=True)
class Account:
    """A user as read from ``ACCOUNT_COLUMNS``: what ``current_user`` and the API show."""

    id: int
    username: str
    user_type: str
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Account:
        """The account in a row selected with ``ACCOUNT_COLUMNS`` (other keys ignored)."""
        return cls(
            row["id"],
            row["username"],
            row["user_type"],
            row["is_active"],
            row["created_at"],
            row["updated_at"],
        )

    @property
    def is_admin(self) -> bool:
        """True for an active admin."""
        return self.is_active and self.user_type == UserType.ADMIN
