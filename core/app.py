"""The composition root: the one place that picks backends and plugs the features in."""

from __future__ import annotations

from typing import Any

from core import accounts, admin, budgets, importer, userdata
from core.assistant import Assistant, Feature
from core.llm import ModelClient, OpenAIModelClient
from core.media import documents, imagegen, photos, speech, voice
from core.settings import Settings, SettingsError
from core.store.base import Store

FEATURES: tuple[Feature, ...] = (
    accounts.register,
    admin.register,
    budgets.register,
    userdata.register,
    importer.register,
    voice.register,
    photos.register,
    documents.register,
    imagegen.register,
    speech.register,
)
"""Linked accounts, admin commands, budgets, export/forget, the WhatsApp import, voice notes, photos,
documents, /image, spoken answers."""


def build_store(settings: Settings) -> Store:
    """The configured store backend (TinyDB files in FERRY_DATA_DIR, or FERRY_DATABASE_URL)."""
    if settings.database_url:
        from core.store.postgres import PostgresStore, is_postgres_url

        if not is_postgres_url(settings.database_url):
            raise SettingsError("FERRY_DATABASE_URL must be a postgresql:// URL")
        return PostgresStore(settings.database_url)
    from core.store.tinydb_store import TinyDBStore

    return TinyDBStore(settings.data_dir)


def build_model_client(settings: Settings) -> OpenAIModelClient:
    """The model client for OPENAI_BASE_URL / OPENAI_API_KEY."""
    return OpenAIModelClient(
        settings.openai_base_url,
        settings.openai_api_key,
        connect_timeout=settings.model_connect_timeout,
        chunk_timeout=settings.model_chunk_timeout,
        max_retries=settings.model_retries,
        concurrency=settings.model_concurrency,
    )


def assemble(settings: Settings, store: Store, model: ModelClient, **options: Any) -> Assistant:
    """An assistant with every feature, over the given store and model client.

    ``options`` are :class:`Assistant`'s keywords (``catalogue``, ``texts``, ``clock``, ``metrics``).
    """
    return Assistant(settings, store, model, features=FEATURES, **options)


def build_assistant(settings: Settings) -> Assistant:
    """An assistant over the configured store and model provider; call ``start()`` before use."""
    return assemble(settings, build_store(settings), build_model_client(settings))
