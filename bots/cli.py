"""The ``ferry`` command: one entry for every process and operator task."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bots import admin_cli, doctor, import_cli, store_cli
from core.settings import Settings, SettingsError

log = logging.getLogger("ferry")

SWITCH_INTERVAL = 0.001
"""Seconds another thread may keep the GIL while a bot's event loop waits for it (Python's default
is 0.005). The loop gives up the GIL at every socket and file call; the store's worker threads and
a document's reader then keep it until the interval is up, so each of a turn's dozens of such calls
could cost up to 5 ms. ``bench.media_bench --phases readers``: the loop's 1 ms ticks came 4.5-5.3 ms
late (median) while PDFs were read, 1.3 ms with 0.001, for the same CPU. ``bench.telegram_bench
--runs table --send-rate 1000``, alternating: 42.4 answers/s at 19.8 ms of CPU an answer with
0.005; 55.1 and 53.6 at 14.7 and 16.8 ms with 0.001."""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The HTTP libraries log every request (with the bot token in the URL) at INFO.
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "telegram.ext.Updater", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry", description="Self-hosted AI assistant for Telegram and Signal."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from bots import console  # its terminal libraries load only when a chat starts

    console.add_subcommand(sub)
    sub.add_parser("telegram", help="run the Telegram bot (TELEGRAM_BOT_TOKEN)")
    sub.add_parser("signal", help="run the Signal bot (SIGNAL_SERVICE, SIGNAL_PHONE_NUMBER)")
    import_cli.add_subcommand(sub)
    doctor.add_subcommand(sub)
    admin_cli.add_subcommands(sub)
    store_cli.add_subcommand(sub)
    return parser


def _require(**settings: str | None) -> None:
    """Stop with the environment names of the settings that are empty."""
    missing = [name for name, value in settings.items() if not value]
    if missing:
        raise SettingsError("missing setting: " + ", ".join(missing))


def main(argv: Sequence[str] | None = None) -> int:
    """Run a ``ferry`` subcommand; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load()
    except SettingsError as e:
        if args.command == "doctor":
            print(f"[FAIL] settings: {e}")
            return 1
        print(f"ferry: {e}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level if args.command != "chat" else "WARNING")
    if args.command in ("telegram", "signal"):
        sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        if args.command == "chat":
            from bots import console

            asyncio.run(console.run(settings, user=args.user))
        elif args.command == "telegram":
            _require(TELEGRAM_BOT_TOKEN=settings.telegram_bot_token)
            from bots.telegram import process as telegram_process

            telegram_process.run(settings)
        elif args.command == "signal":
            _require(SIGNAL_SERVICE=settings.signal_service, SIGNAL_PHONE_NUMBER=settings.signal_phone_number)
            from bots import loop as event_loop
            from bots.signal import process as signal_process

            event_loop.run(signal_process.run(settings), settings.event_loop)
        elif args.command == "import-whatsapp":
            return asyncio.run(import_cli.run(args, settings))
        elif args.command == "doctor":
            return asyncio.run(doctor.run(settings))
        elif args.command == "store":
            return asyncio.run(store_cli.run(args, settings))
        elif args.command in admin_cli.COMMANDS:
            return asyncio.run(admin_cli.run(args, settings))
    except SettingsError as e:
        print(f"ferry: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
