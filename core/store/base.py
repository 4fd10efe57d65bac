"""The store contract: records and the Protocol every backend implements.

Records are frozen dataclasses; a backend stores them as plain JSON-compatible dicts via
``to_dict``/``from_dict``. All methods are async so that PostgreSQL and the file-backed TinyDB
store (which does its I/O in a worker thread) share one shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Self

SCHEMA_VERSION = 2

UserStatus = Literal["pending", "approved", "denied", "blocked"]
Role = Literal["user", "assistant", "system"]
# ok; pending (an answer being generated); interrupted (failed halfway); cancelled (stopped by the person)
MessageStatus = Literal["ok", "pending", "interrupted", "cancelled"]
# received (recorded, not answered yet); answered (the answer is stored); delivered (the person has it)
IntakeStatus = Literal["received", "answered", "delivered"]


@dataclass(frozen=True)
class Record:
    """What the stored records share: their form as a plain dict, read back ignoring unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES.setdefault(cls, frozenset(f.name for f in dataclasses.fields(cls)))
        if names.issuperset(data):  # the usual case: read back as written
            return cls(**data)
        return cls(**{k: v for k, v in data.items() if k in names})


# Each record class's field names, listed once.
_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass(frozen=True)
class ScalarRecord(Record):
    """A record whose fields are all immutable scalars: its dict is a plain copy of its fields.

    A turn writes several of these; ``dataclasses.asdict``'s recursive deep copy was a visible
    part of its CPU time, and a scalar needs no copy.
    """

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class UserRecord(Record):
    """A person. One user may have several platform identities (``telegram:1``, ``signal:<uuid>``)."""

    id: str
    identities: tuple[str, ...] = ()
    display_name: str | None = None
    status: UserStatus = "pending"
    is_admin: bool = False
    lang: str | None = None  # explicit /lang choice; None = follow the messenger
    model: str | None = None
    instructions: str | None = None
    created_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["identities"] = list(self.identities)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        rec = super().from_dict(data)
        return dataclasses.replace(rec, identities=tuple(rec.identities))


@dataclass(frozen=True)
class ConversationRecord(ScalarRecord):
    """A conversation. ``scope`` is who it belongs to: ``user:<id>`` or ``group:<chat key>``."""

    id: str
    scope: str
    title: str | None = None
    model: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    message_count: int = 0
    source: str | None = None  # e.g. "whatsapp:<sha256 of the file>" for an import


@dataclass(frozen=True)
class MessageRecord(ScalarRecord):
    """One turn of a conversation. ``seq`` is its 0-based position, assigned by the store.

    ``status`` is ``ok``, ``pending`` (an answer being generated), ``interrupted`` (failed
    halfway) or ``cancelled`` (stopped by the person).
    """

    id: str
    conversation_id: str
    role: Role
    content: str
    created_at: float
    seq: int = -1
    status: MessageStatus = "ok"
    author: str | None = None  # identity string of the user who said it (groups)
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class UsageRecord:
    """Tokens and cost of one answer, accounted to a user and a conversation."""

    user_id: str
    conversation_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    at: float


@dataclass(frozen=True)
class UsageTotals:
    """Summed usage over a period; ``by_model`` maps a model name to its own totals."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    by_model: dict[str, tuple[int, int, float]] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class IntakeRecord(Record):
    """One message as it arrived, recorded before the messenger is told it was received.

    ``key`` is the messenger's own id of the update (``telegram:<update_id>``,
    ``signal:<sender>:<timestamp>``): a key is recorded once. ``chat`` is the line it waits in
    (``str(ChatKey)``, which starts with the platform); ``seq`` its place there, assigned by the
    store. ``message`` is the serialized :class:`~core.types.Incoming` and ``route`` the adapter's
    own delivery details, both JSON. ``answer`` holds the reply's deliverable events (serialized)
    from ``answered`` until ``delivered``; ``ref`` is the messenger's id of what the person sees of
    the answer (a stub being edited, then the delivered message).
    """

    key: str
    chat: str
    message: dict[str, Any]
    received_at: float
    route: dict[str, Any] = field(default_factory=dict)
    seq: int = -1
    status: IntakeStatus = "received"
    answer: list[dict[str, Any]] | None = None
    ref: str | None = None

    @property
    def platform(self) -> str:
        """The messenger the message came from."""
        return self.chat.partition(":")[0]

    def to_dict(self) -> dict[str, Any]:
        """Its fields, the JSON values among them shared, not deep-copied: nothing changes them in
        place (a record read back holds the store cache's own dicts the same way), and every mark
        writes the whole record, where ``dataclasses.asdict``'s deep copy was a tenth of the store's CPU."""
        return dict(self.__dict__)


def advance(rec: IntakeRecord, status: IntakeStatus, *, answer: Any = None, ref: str | None = None) -> IntakeRecord:
    """The record after a mark: a delivered record never changes again (``answered`` arriving late
    undoes nothing); delivering drops the message and the events; ``ref`` replaces the one it had."""
    if rec.status == "delivered":
        return rec
    if status == "delivered":  # only the key is needed any more (a redelivered update is recognised)
        return dataclasses.replace(rec, status=status, message={}, route={}, answer=None, ref=ref or rec.ref)
    if status == "answered":
        return dataclasses.replace(rec, status=status, answer=answer, ref=ref or rec.ref)
    return dataclasses.replace(rec, ref=ref or rec.ref)  # shown: whatever the status, the stub is known


class StoreError(Exception):
    """The store could not complete an operation (disk full, read-only folder, corrupt file)."""


class UserStore(Protocol):
    """Users and their platform identities."""

    async def get_user(self, user_id: str) -> UserRecord | None: ...
    async def find_user(self, identity: str) -> UserRecord | None: ...
    async def put_user(self, user: UserRecord) -> None:
        """Insert or replace a user and index its identities (an identity maps to one user)."""

    async def delete_user(self, user_id: str) -> None:
        """Delete the user, its identities, its conversations, messages and usage."""

    async def list_users(self) -> list[UserRecord]: ...


class ConversationStore(Protocol):
    """Conversations and their messages."""

    async def put_conversation(self, conv: ConversationRecord) -> None: ...
    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None: ...
    async def list_conversations(self, scope: str, limit: int = 20) -> list[ConversationRecord]:
        """The scope's conversations, most recently updated first."""

    async def find_conversation_by_source(self, scope: str, source: str) -> ConversationRecord | None: ...
    async def move_conversations(self, from_scope: str, to_scope: str) -> int:
        """Give every conversation of one scope to another (account linking); returns how many."""

    async def append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        """Append to one conversation in order; returns them with ``seq`` assigned.

        Durable when it returns. Also bumps the conversation's ``updated_at`` and count.
        """

    async def update_message(self, message: MessageRecord) -> None:
        """Replace the stored message with the same conversation and ``seq``."""

    async def get_messages(self, conversation_id: str, last: int | None = None) -> list[MessageRecord]:
        """The conversation's messages in order; only the last ``last`` ones when given."""

    async def truncate_messages(self, conversation_id: str, from_seq: int) -> None:
        """Delete the messages with ``seq >= from_seq`` (used by /retry)."""


class UsageStore(Protocol):
    """Tokens and cost, summed per user and for everyone."""

    async def add_usage(self, usage: UsageRecord) -> None: ...
    async def usage_totals(self, user_id: str, since: float) -> UsageTotals:
        """The user's usage at or after ``since``, which is always a UTC midnight, so a backend
        may keep per-day sums instead of every record."""

    async def global_usage_totals(self, since: float) -> UsageTotals:
        """Everyone's usage at or after ``since`` (a UTC midnight)."""

    async def move_usage(self, from_user: str, to_user: str) -> None:
        """Account every usage record of one user to another (merging linked accounts)."""


class MetaStore(Protocol):
    """Small settings and state (claim code, global budget, link codes), and the store as a whole."""

    async def open(self) -> None:
        """Create or open the store and run pending migrations."""

    async def close(self) -> None:
        """Release files, locks and connections."""

    async def get_meta(self, key: str) -> Any: ...
    async def set_meta(self, key: str, value: Any) -> None:
        """Set a value; ``None`` deletes the key."""

    async def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace a value with ``change(old)`` atomically, also across processes; returns the new value.

        ``old`` is None when the key is unset and is the caller's own copy; a None result deletes the
        key. ``change`` runs under the store's lock: keep it short and free of I/O.
        """

    async def backup(self, dest: Path) -> None:
        """Write a consistent copy of the whole store to the new folder ``dest`` while it is in use."""

    async def restore(self, src: Path) -> None:
        """Replace the store's whole content with a copy written by :meth:`backup`."""


class IntakeStore(Protocol):
    """Messages as they arrive, each in its chat's line, until their answer is delivered.

    Every status change only moves forward (received → answered → delivered) and is durable when
    it returns. A backend keeps delivered records at least ``INTAKE_RETENTION`` seconds (so a
    messenger's redelivery of an update is recognised) and may forget them after that.
    """

    async def record(self, rec: IntakeRecord) -> IntakeRecord | None:
        """Add a message to the end of its chat's line; returns it with ``seq``, or None when the key
        is recorded already (nothing changes then)."""

    async def unfinished(self, platform: str) -> list[IntakeRecord]:
        """The platform's records not yet delivered, each chat's in line order (``seq``), oldest chat first."""

    async def mark_answered(self, chat: str, key: str, answer: list[dict[str, Any]], ref: str | None = None) -> None:
        """The answer is stored; keep its deliverable events until it is delivered (``ref``: the
        message about to show it, in the same write, as :meth:`mark_shown` would record it)."""

    async def mark_shown(self, chat: str, key: str, ref: str) -> None:
        """Part of the answer is visible as the message ``ref`` (a stub a restart should edit)."""

    async def mark_delivered(self, chat: str, key: str, ref: str | None) -> None:
        """The person has the whole answer (``ref``: the messenger's id of it); its events are dropped."""


INTAKE_RETENTION = 24 * 3600.0
"""Telegram keeps an unconfirmed update 24 hours; a redelivered one must still be recognised."""

INTAKE_KEEP = 256
"""Delivered records a chat keeps at most: only the newest updates are ever sent again."""


def stale_intake(records: list[IntakeRecord], now: float) -> set[str]:
    """Keys of a chat's delivered records a backend may forget: older than ``INTAKE_RETENTION``, or
    beyond the newest ``INTAKE_KEEP`` delivered ones. Unfinished records are never stale."""
    delivered = sorted((r for r in records if r.status == "delivered"), key=lambda r: r.seq, reverse=True)
    return {r.key for i, r in enumerate(delivered) if i >= INTAKE_KEEP or r.received_at < now - INTAKE_RETENTION}


class Store(UserStore, ConversationStore, UsageStore, MetaStore, IntakeStore, Protocol):
    """What the core needs from persistence. One instance per process; safe across processes.

    A part of the core that needs one aggregate takes that Protocol (``UsageStore`` …) instead.
    """
