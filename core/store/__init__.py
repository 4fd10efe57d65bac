"""Persistence: the store contract and its backends."""

from core.store.base import (
    SCHEMA_VERSION,
    ConversationRecord,
    MessageRecord,
    Store,
    StoreError,
    UsageRecord,
    UsageTotals,
    UserRecord,
)

__all__ = [
    "SCHEMA_VERSION",
    "ConversationRecord",
    "MessageRecord",
    "Store",
    "StoreError",
    "UsageRecord",
    "UsageTotals",
    "UserRecord",
]
