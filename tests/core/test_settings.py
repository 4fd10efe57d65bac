"""Settings are validated at start with a message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings, SettingsError


def test_defaults_are_safe() -> None:
    s = Settings.load({})
    assert s.access == "approval"
    assert s.data_dir == Path("data")
    assert s.model_choices == ("gpt-4o-mini",)


def test_environment_wins_over_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "ferry.toml"
    config.write_text('FERRY_MODEL = "gpt-4o"\nFERRY_MODELS = ["gpt-4o", "llama3.1"]\nFERRY_ACCESS = "open"\n')
    s = Settings.load({"FERRY_CONFIG": str(config), "FERRY_ACCESS": "allowlist"})
    assert s.model == "gpt-4o" and s.models == ("gpt-4o", "llama3.1") and s.access == "allowlist"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FERRY_ACCESS": "everyone"}, "FERRY_ACCESS must be one of open, allowlist, approval"),
        ({"FERRY_ADMINS": "12345"}, "look like telegram:123"),
        ({"FERRY_REPLY_TOKENS": "lots"}, "FERRY_REPLY_TOKENS must be a whole number"),
        ({"FERRY_LANG": "fr"}, "FERRY_LANG must be one of en, id"),
        ({"FERRY_CONFIG": "/nonexistent/ferry.toml"}, "does not exist"),
        ({"FERRY_TELEGRAM_SEND_RATE": "fast"}, "FERRY_TELEGRAM_SEND_RATE must be a number of messages a second"),
        ({"FERRY_EVENT_LOOP": "trio"}, "FERRY_EVENT_LOOP must be uvloop or asyncio, not 'trio'"),
    ],
)
def test_invalid_settings_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load(env)


def test_the_settings_repr_never_shows_a_secret() -> None:
    # A settings object ends up in tracebacks and debug logs; the secrets must not come with it.
    secrets = {
        "OPENAI_API_KEY": "sk-very-secret",
        "TELEGRAM_BOT_TOKEN": "123:telegram-secret",
        "FERRY_TELEGRAM_WEBHOOK_SECRET": "hook-secret",
        "FERRY_DATABASE_URL": "postgresql://ferry:db-secret@127.0.0.1/ferry",
    }
    s = Settings.from_values(secrets)
    assert s.openai_api_key == "sk-very-secret"
    shown = repr(s)
    for value in secrets.values():
        assert value not in shown
