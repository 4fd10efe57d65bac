"""One settings object, loaded once in ``main()`` from the environment and an optional TOML file.

The TOML file (named by ``FERRY_CONFIG``) uses the same names as the environment variables,
for example ``FERRY_MODEL = "gpt-4o-mini"``; the environment wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from core.i18n import available_languages

ACCESS_MODES = ("open", "allowlist", "approval")
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Everything an operator can configure. Names match the documented setting names."""

    openai_api_key: str | None = field(default=None, repr=False)  # a secret: never in logs or tracebacks
    openai_base_url: str | None = None
    model: str = "gpt-4o-mini"
    models: tuple[str, ...] = ()
    system_prompt: str = ""
    reply_tokens: int = 2048
    context_window: int | None = None  # tokens; None: the catalogue's, else what the server says
    model_connect_timeout: float = 10.0
    model_chunk_timeout: float = 60.0
    model_retries: int = 2
    model_concurrency: int = 64
    transcription_model: str = "whisper-1"
    image_model: str = "gpt-image-1"
    speech_model: str = "tts-1"

    telegram_bot_token: str | None = field(default=None, repr=False)  # a secret: never in logs or tracebacks
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str | None = None
    telegram_webhook_port: int = 8443
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_send_rate: float = 30.0
    telegram_webhook_secret: str | None = field(default=None, repr=False)  # a secret: never in logs or tracebacks

    signal_service: str | None = None
    signal_phone_number: str | None = None

    data_dir: Path = Path("data")
    database_url: str | None = field(default=None, repr=False)  # a secret: never in logs or tracebacks
    config_dir: Path = DEFAULT_CONFIG_DIR

    access: str = "approval"
    admins: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    default_lang: str = "en"
    max_message_chars: int = 16_000
    rate_per_minute: int = 20

    health_port: int | None = None
    health_host: str = "127.0.0.1"
    log_level: str = "INFO"
    event_loop: str = "uvloop"  # the bot processes' loop (bots/loop.py): "uvloop" where installed, or "asyncio"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def model_choices(self) -> tuple[str, ...]:
        """The models a user may pick with /model; the default model always comes first."""
        rest = tuple(m for m in self.models if m != self.model)
        return (self.model, *rest)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment (and ``FERRY_CONFIG``'s TOML file); raise SettingsError if invalid."""
        environ = dict(os.environ if env is None else env)
        values: dict[str, str] = {}
        config_file = environ.get("FERRY_CONFIG")
        if config_file:
            values.update(_read_toml(Path(config_file)))
        values.update({k: v for k, v in environ.items() if v != ""})
        return cls.from_values(values)

    @classmethod
    def from_values(cls, v: Mapping[str, str]) -> Settings:
        """Build settings from a flat mapping of setting names to strings."""
        access = v.get("FERRY_ACCESS", "approval").strip().lower()
        if access not in ACCESS_MODES:
            raise SettingsError(f"FERRY_ACCESS must be one of {', '.join(ACCESS_MODES)}, not {access!r}")
        lang = v.get("FERRY_LANG", "en").strip().lower()
        languages = available_languages(Path(v.get("FERRY_CONFIG_DIR", str(DEFAULT_CONFIG_DIR))) / "locales")
        # No locale files at all means FERRY_CONFIG_DIR is wrong: loading the texts says so more
        # usefully (and `ferry doctor` names the folder) than a FERRY_LANG that "must be one of" nothing.
        if languages and lang not in languages:
            raise SettingsError(f"FERRY_LANG must be one of {', '.join(languages)}, not {lang!r}")
        event_loop = v.get("FERRY_EVENT_LOOP", "uvloop").strip().lower()
        if event_loop not in ("uvloop", "asyncio"):
            raise SettingsError(f"FERRY_EVENT_LOOP must be uvloop or asyncio, not {event_loop!r}")
        admins = _list(v.get("FERRY_ADMINS"))
        for ident in (*admins, *_list(v.get("FERRY_ALLOWED"))):
            if ":" not in ident:
                raise SettingsError(
                    "FERRY_ADMINS / FERRY_ALLOWED entries look like telegram:123 or signal:+4915…, "
                    f"not {ident!r}"
                )
        return cls(
            openai_api_key=v.get("OPENAI_API_KEY"),
            openai_base_url=v.get("OPENAI_BASE_URL"),
            model=v.get("FERRY_MODEL", "gpt-4o-mini").strip(),
            models=_list(v.get("FERRY_MODELS")),
            system_prompt=v.get("FERRY_SYSTEM_PROMPT", ""),
            reply_tokens=_int(v, "FERRY_REPLY_TOKENS", 2048, low=16),
            context_window=_int(v, "FERRY_CONTEXT_WINDOW", 0, low=0) or None,
            model_connect_timeout=_float(v, "FERRY_MODEL_CONNECT_TIMEOUT", 10.0),
            model_chunk_timeout=_float(v, "FERRY_MODEL_CHUNK_TIMEOUT", 60.0),
            model_retries=_int(v, "FERRY_MODEL_RETRIES", 2, low=0),
            model_concurrency=_int(v, "FERRY_MODEL_CONCURRENCY", 64, low=1),
            transcription_model=v.get("FERRY_TRANSCRIPTION_MODEL", "whisper-1").strip(),
            image_model=v.get("FERRY_IMAGE_MODEL", "gpt-image-1").strip(),
            speech_model=v.get("FERRY_SPEECH_MODEL", "tts-1").strip(),
            telegram_bot_token=v.get("TELEGRAM_BOT_TOKEN"),
            telegram_api_url=v.get("TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/"),
            telegram_webhook_url=v.get("FERRY_TELEGRAM_WEBHOOK_URL"),
            telegram_webhook_port=_int(v, "FERRY_TELEGRAM_WEBHOOK_PORT", 8443, low=1),
            telegram_webhook_listen=v.get("FERRY_TELEGRAM_WEBHOOK_LISTEN", "0.0.0.0"),
            telegram_send_rate=_number(
                v, "FERRY_TELEGRAM_SEND_RATE", 30.0, float, "a number of messages a second",
                ("positive", lambda x: x > 0),
            ),
            telegram_webhook_secret=v.get("FERRY_TELEGRAM_WEBHOOK_SECRET"),
            signal_service=v.get("SIGNAL_SERVICE"),
            signal_phone_number=v.get("SIGNAL_PHONE_NUMBER"),
            data_dir=Path(v.get("FERRY_DATA_DIR", "data")),
            database_url=v.get("FERRY_DATABASE_URL"),
            config_dir=Path(v.get("FERRY_CONFIG_DIR", str(DEFAULT_CONFIG_DIR))),
            access=access,
            admins=admins,
            allowed=_list(v.get("FERRY_ALLOWED")),
            default_lang=lang,
            max_message_chars=_int(v, "FERRY_MAX_MESSAGE_CHARS", 16_000, low=100),
            rate_per_minute=_int(v, "FERRY_RATE_PER_MINUTE", 20, low=1),
            health_port=_int(v, "FERRY_HEALTH_PORT", 0, low=0) or None,
            health_host=v.get("FERRY_HEALTH_HOST", "127.0.0.1"),
            log_level=v.get("FERRY_LOG_LEVEL", "INFO").upper(),
            event_loop=event_loop,
        )


def _read_toml(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise SettingsError(f"FERRY_CONFIG names {path}, which does not exist")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path} is not valid TOML: {e}") from e
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list):
            out[key] = ",".join(str(x) for x in value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _list(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(x.strip() for x in raw.replace(";", ",").split(",") if x.strip())


_N = TypeVar("_N", int, float)


def _number(
    v: Mapping[str, str],
    name: str,
    default: _N,
    parse: Callable[[str], _N],
    what: str,
    bound: tuple[str, Callable[[_N], bool]],
) -> _N:
    """Setting ``name`` read by ``parse``, ``default`` when unset.

    Raises SettingsError unless the value is ``what`` and within ``bound`` (the limit's wording
    and its test); a default is trusted as it is.
    """
    raw = v.get(name)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError as e:
        raise SettingsError(f"{name} must be {what}, not {raw!r}") from e
    wording, within = bound
    if not within(value):
        raise SettingsError(f"{name} must be {wording}, not {value}")
    return value


def _int(v: Mapping[str, str], name: str, default: int, low: int) -> int:
    return _number(v, name, default, int, "a whole number", (f"at least {low}", lambda n: n >= low))


def _float(v: Mapping[str, str], name: str, default: float) -> float:
    return _number(v, name, default, float, "a number of seconds", ("positive", lambda x: x > 0))
