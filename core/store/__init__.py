"""Persistence: the store contract and its backends."""

from core.store.base import (
    SCHEMA_VERSION,
    ConversationRecord,
    ConversationStore,
    MessageRecord,
    MessageStatus,
    MetaStore,
    Role,
    Store,
    StoreError,
    UsageRecord,
    UsageStore,
    UsageTotals,
    UserRecord,
    UserStatus,
    UserStore,
)

__all__ = [
    "SCHEMA_VERSION",
    "ConversationRecord",
    "ConversationStore",
    "MessageRecord",
    "MessageStatus",
    "MetaStore",
    "Role",
    "Store",
    "StoreError",
    "UsageRecord",
    "UsageStore",
    "UsageTotals",
    "UserRecord",
    "UserStatus",
    "UserStore",
]
