"""Build a ready-to-start :class:`Assistant` from settings (the one place that picks backends)."""

from __future__ import annotations

from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.settings import Settings, SettingsError
from core.store.base import Store


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


def build_assistant(settings: Settings) -> Assistant:
    """An assistant over the configured store and model provider; call ``start()`` before use."""
    return Assistant(settings, build_store(settings), build_model_client(settings))
