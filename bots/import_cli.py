"""``ferry import-whatsapp FILE --user ID [--assistant NAME]``: the operator's import."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from pathlib import Path
from typing import TextIO

from core.app import build_store
from core.i18n import Texts
from core.importer import parse_upload, store_transcript
from core.settings import Settings
from core.store.base import UserRecord
from core.whatsapp.archive import ImportRejected
from core.whatsapp.roles import to_turns

EXIT_BAD_INPUT = 2


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("import-whatsapp", help="import a WhatsApp chat export for a user")
    cmd.add_argument("file", type=Path, help="the exported .txt or .zip")
    cmd.add_argument("--user", required=True, help="user id, or an identity such as telegram:123")
    cmd.add_argument("--assistant", help="the sender name that was the assistant (when not detected)")


class ProgressBar:
    """A one-line progress bar on a terminal; plain lines elsewhere."""

    def __init__(self, out: TextIO, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.tty = out.isatty()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self.tty:
            filled = int(share * self.width)
            bar = "█" * filled + "░" * (self.width - filled)
            self.out.write(f"\rImporting {bar} {done}/{total}")
            if done >= total:
                self.out.write("\n")
        elif int(share * 10) != self._last:
            self._last = int(share * 10)
            self.out.write(f"Importing: {done}/{total} messages\n")
        self.out.flush()


async def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Import the file; prints what happened and returns the exit code."""
    try:
        data = args.file.read_bytes()
    except OSError as e:
        print(f"ferry: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        # The file's own time (with a day's slack for the phone's zone): no message is later.
        written = dt.datetime.fromtimestamp(args.file.stat().st_mtime) + dt.timedelta(days=1)
        chat, roles, name = parse_upload(args.file.name, data, written)
    except ImportRejected as e:
        print(f"ferry: {args.file.name} was not imported: {_reason(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.assistant:
        if args.assistant not in chat.senders:
            print(f"ferry: {args.assistant!r} is not a sender; senders: {', '.join(chat.senders)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if name in (roles.assistant, "WhatsApp"):  # the file name did not carry the chat's name
            name = args.assistant
        roles = roles.with_assistant(args.assistant)
    elif roles.assistant is None or roles.needs_question:
        print(
            "ferry: which sender was the assistant? Run again with --assistant NAME; senders: "
            + ", ".join(repr(s) for s in chat.senders),
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT

    store = build_store(settings)
    await store.open()
    try:
        user = await store.get_user(args.user) or await store.find_user(args.user)
        if user is None:
            if ":" not in args.user:
                print(f"ferry: no user {args.user!r}; give a user id or an identity like telegram:123", file=sys.stderr)
                return EXIT_BAD_INPUT
            # The operator importing for someone vouches for them.
            user = UserRecord(
                id=uuid.uuid4().hex[:12], identities=(args.user,), status="approved", created_at=time.time()
            )
            await store.put_user(user)
        transcript = to_turns(chat, roles)
        # The same title an import from chat gets, in the user's language.
        texts = Texts.load(settings.config_dir / "locales")
        title = texts.get(texts.pick_language(user.lang, settings.default_lang), "import.title", name=name)
        out.write(
            f"{len(transcript.turns)} messages; assistant = {roles.assistant!r}, user = {roles.user!r}\n"
        )
        conv, existed = await store_transcript(
            store, f"user:{user.id}", title, transcript, on_progress=ProgressBar(out)
        )
    finally:
        await store.close()
    if existed:
        out.write(f"Already imported as {conv.title!r}; nothing was added twice.\n")
    else:
        out.write(f"Imported {len(transcript.turns)} messages into {conv.title!r} for user {user.id}.\n")
    return 0


def _reason(e: ImportRejected) -> str:
    return {
        "not_export": "it is not a WhatsApp chat export",
        "empty": "it has no messages",
        "too_large": "it is too large (50 MB at most)",
        "zip_bomb": "the zip unpacks to far more than a chat export",
        "unsafe_zip": "the zip holds unsafe file names",
        "encoding": "its text encoding is not UTF-8 or UTF-16",
        "group_chat": "it is a group chat (more than two senders)",
    }.get(e.reason, e.reason)
