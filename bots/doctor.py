"""``ferry doctor``: check the settings, the store, the model and each messenger, and say how to fix.

Each check is a small async function returning :class:`Finding` values; the command prints
them and exits 1 when anything is wrong. It talks to the messengers' HTTP APIs directly (one
request each), so it works whichever process is or is not running.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp

from bots.services import ServiceProblem, check_signal_service, signal_base_url
from core.app import build_model_client, build_store
from core.catalogue import Catalogue
from core.i18n import Texts
from core.llm import ModelError
from core.settings import Settings, SettingsError
from core.store.base import Store

TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, whether it is fine, and how to fix it."""

    area: str
    ok: bool
    detail: str
    fix: str = ""


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("doctor", help="check settings, store, model and messengers, and say how to fix them")


def check_config(settings: Settings) -> list[Finding]:
    """The model catalogue and the bot's texts load from FERRY_CONFIG_DIR (by default, the installed ones)."""
    try:
        Catalogue.load(settings.config_dir / "models.toml")
        languages = Texts.load(settings.config_dir / "locales").languages
    except Exception as e:
        return [
            Finding(
                "config", False, f"cannot read the catalogue and texts in {settings.config_dir}: {e}",
                "unset FERRY_CONFIG_DIR to use the ones installed with Ferry, or copy config/ there",
            )
        ]
    return [Finding("config", True, f"model catalogue and texts ({', '.join(languages)}) from {settings.config_dir}")]


async def check_store(settings: Settings) -> list[Finding]:
    if settings.database_url:
        from bots.doctor_postgres import check_postgres

        return await check_postgres(settings.database_url)
    try:
        return await round_trip(build_store(settings), str(settings.data_dir))
    except SettingsError as e:
        return [Finding("store", False, str(e))]
    except Exception as e:
        return [
            Finding(
                "store", False, f"cannot use {settings.data_dir}: {e}",
                "make FERRY_DATA_DIR a writable folder with free space (in Docker: the /data volume)",
            )
        ]


async def round_trip(store: Store, where: str) -> list[Finding]:
    """Open the store, write a value, read it back and clear it; raises what opening raises."""
    await store.open()
    try:
        await store.set_meta("doctor_check", "ok")
        value = await store.get_meta("doctor_check")
        await store.set_meta("doctor_check", None)
    finally:
        await store.close()
    if value != "ok":
        return [Finding("store", False, "a value written to the store did not read back")]
    return [Finding("store", True, f"{where} opens, writes and reads back")]


def _without_v1(base_url: str) -> bool:
    return "/v1" not in urlsplit(base_url).path


async def check_model(settings: Settings) -> list[Finding]:
    """The model provider answers, and offers the configured models."""
    where = settings.openai_base_url or "api.openai.com"
    if not settings.openai_api_key and not settings.openai_base_url:
        fix = "set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)"
        return [Finding("model", False, "OPENAI_API_KEY is not set", fix)]
    base = settings.openai_base_url
    if base and "://" not in base:
        fix = f"write it with its scheme: OPENAI_BASE_URL=http://{base} (https:// for a remote provider)"
        return [Finding("model", False, f"OPENAI_BASE_URL {base} has no http:// or https://", fix)]
    client = build_model_client(settings)
    try:
        models = await client.list_models()
    except ModelError as e:
        fixes = {
            "auth": "check OPENAI_API_KEY",
            "provider_down": f"check OPENAI_BASE_URL ({where}) is reachable from here and ends in /v1",
            "quota": "top up the provider account",
        }
        fix = fixes.get(e.kind, "")
        if base and _without_v1(base) and e.kind != "auth":
            # Most OpenAI-compatible servers (llama.cpp, vLLM, Ollama, LM Studio) serve under /v1.
            fix = f"OPENAI_BASE_URL usually ends in /v1: try OPENAI_BASE_URL={base.rstrip('/')}/v1"
        return [Finding("model", False, f"{where}: {e.kind}: {e.message}", fix)]
    finally:
        await client.aclose()
    missing = [m for m in settings.model_choices if models and m not in models]
    if missing:
        return [
            Finding(
                "model", False, f"{where} does not list {', '.join(missing)}",
                "set FERRY_MODEL / FERRY_MODELS to names from: " + ", ".join(models[:15]),
            )
        ]
    return [Finding("model", True, f"{where} answers and offers {', '.join(settings.model_choices)}")]


async def check_telegram(settings: Settings, http: aiohttp.ClientSession) -> list[Finding]:
    if not settings.telegram_bot_token:
        return [Finding("telegram", True, "not configured (TELEGRAM_BOT_TOKEN is empty); skipped")]
    url = f"{settings.telegram_api_url}/bot{settings.telegram_bot_token}/getMe"
    try:
        async with http.post(url) as r:
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        problem = f"cannot reach {settings.telegram_api_url}: {e}"
        return [Finding("telegram", False, problem, "check TELEGRAM_API_URL and the network")]
    if not body.get("ok"):
        return [
            Finding(
                "telegram", False, f"Telegram refused the token: {body.get('description', r.status)}",
                "copy the token again from @BotFather into TELEGRAM_BOT_TOKEN",
            )
        ]
    return [Finding("telegram", True, f"connected as @{body['result'].get('username')}")]


async def check_signal(settings: Settings, http: aiohttp.ClientSession) -> list[Finding]:
    """The same check the Signal bot makes before it starts (bots.services)."""
    if not settings.signal_service:
        return [Finding("signal", True, "not configured (SIGNAL_SERVICE is empty); skipped")]
    base = signal_base_url(settings.signal_service)
    try:
        version = await check_signal_service(http, base, settings.signal_phone_number)
    except ServiceProblem as problem:
        return [Finding("signal", False, str(problem))]
    number = settings.signal_phone_number
    return [Finding("signal", True, f"signal-cli-rest-api {version} in json-rpc mode, {number} linked")]


async def diagnose(settings: Settings) -> list[Finding]:
    """Every finding, settings first."""
    findings = [Finding("settings", True, f"loaded; access mode {settings.access}, model {settings.model}")]
    findings += check_config(settings)
    findings += await check_store(settings)
    findings += await check_model(settings)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        findings += await check_telegram(settings, http)
        findings += await check_signal(settings, http)
    if not settings.admins and settings.access == "approval":
        findings.append(
            Finding("access", True, "no FERRY_ADMINS: the bot logs a claim code at start; send /claim CODE to it")
        )
    return findings


def report(findings: list[Finding], out: TextIO) -> int:
    for f in findings:
        mark = "ok " if f.ok else "FAIL"
        out.write(f"[{mark}] {f.area}: {f.detail}\n")
        if f.fix:
            out.write(f"       fix: {f.fix}\n")
    return 0 if all(f.ok for f in findings) else 1


async def run(settings: Settings, out: TextIO = sys.stdout) -> int:
    return report(await diagnose(settings), out)
