"""Operator subcommands of ``ferry``: users, export, backup and restore.

They work on the configured store directly, so they run beside the bot processes (the TinyDB
store is safe for several processes) and need no messenger. ``bots/cli.py`` adds them with
:func:`add_subcommands` and runs them with :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.access import AccessControl
from core.admin import format_amount, other_admins, period_bounds, set_admin, user_label
from core.app import build_store
from core.i18n import Texts
from core.settings import Settings
from core.store.base import Store, StoreError, UserRecord, UserStatus
from core.userdata import export_files

COMMANDS = ("users", "export", "backup", "restore")
USER_ACTIONS = ("list", "approve", "deny", "block", "unblock", "admin", "unadmin")


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``users``, ``export``, ``backup`` and ``restore`` to the ``ferry`` parser."""
    users = subparsers.add_parser(
        "users",
        help="list users, or approve, deny, block, unblock them, or make or remove admins",
        description="Without arguments: list every user with status and this month's usage.",
    )
    users.add_argument("action", nargs="?", default="list", choices=USER_ACTIONS)
    users.add_argument("user", nargs="?", help="user id or identity such as telegram:123")

    export = subparsers.add_parser("export", help="write a user's conversations as JSON and Markdown files")
    export.add_argument("--user", required=True, help="user id or identity such as telegram:123")
    export.add_argument("--out", type=Path, default=Path("."), help="folder for the files (default: here)")
    export.add_argument("--lang", default=None, help="language of the Markdown file (default: the user's)")

    backup = subparsers.add_parser(
        "backup", help="copy the store to a new folder; safe while the bots run (they wait for the copy)"
    )
    backup.add_argument("path", type=Path, help="a folder that does not exist yet (or is empty)")

    restore = subparsers.add_parser("restore", help="replace the store's content with a backup folder")
    restore.add_argument("path", type=Path, help="a folder written by `ferry backup`")
    restore.add_argument("--yes", action="store_true", help="replace a store that already holds users")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one operator subcommand; returns the process exit code."""
    store = build_store(settings)
    try:
        await store.open()
        if args.command == "users":
            return await _users(store, settings, args.action, args.user)
        if args.command == "export":
            return await _export(store, settings, args.user, args.out, args.lang)
        if args.command == "backup":
            await store.backup(args.path)
            print(f"Backed up {settings.data_dir} to {args.path}")
            return 0
        if args.command == "restore":
            return await _restore(store, settings, args.path, args.yes)
        print(f"ferry: unknown command {args.command}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"ferry: {e}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _find(store: Store, settings: Settings, who: str | None) -> UserRecord | None:
    if not who:
        print("ferry: name the user by id or identity, such as telegram:123", file=sys.stderr)
        return None
    user = await AccessControl(settings, store, time.time).find_user(who)
    if user is None:
        print(f"ferry: no user {who}", file=sys.stderr)
    return user


async def _users(store: Store, settings: Settings, action: str, who: str | None) -> int:
    if action == "list":
        month, _ = period_bounds("month", time.time())
        access = AccessControl(settings, store, time.time)
        users = await store.list_users()
        for u in users:
            totals = await store.usage_totals(u.id, month)
            role = " admin" if access.is_admin(u, u.identities) else ""
            print(
                f"{u.id}  {u.status}{role}  {user_label(u)}  [{', '.join(u.identities)}]  "
                f"this month: {totals.tokens:,} tokens, {format_amount(totals.cost, 'usd')}"
            )
        print(f"{len(users)} users")
        return 0
    user = await _find(store, settings, who)
    if user is None:
        return 1
    if action in ("approve", "deny", "block", "unblock"):
        statuses: dict[str, UserStatus] = {
            "approve": "approved",
            "deny": "denied",
            "block": "blocked",
            "unblock": "approved",
        }
        status = statuses[action]
        await AccessControl(settings, store, time.time).set_status(user, status)
        print(f"{user_label(user)} ({user.id}) is now {status}")
    elif action == "admin":
        await set_admin(store, user, True)
        print(f"{user_label(user)} ({user.id}) is now an admin")
    else:
        if not await other_admins(store, settings.admins, user):
            print("ferry: that is the last admin; make someone else an admin first", file=sys.stderr)
            return 1
        await set_admin(store, user, False)
        print(f"{user_label(user)} ({user.id}) is no longer an admin")
    return 0


async def _export(store: Store, settings: Settings, who: str, out: Path, lang: str | None) -> int:
    user = await _find(store, settings, who)
    if user is None:
        return 1
    texts = Texts.load(settings.config_dir / "locales")
    language = texts.pick_language(lang, user.lang, settings.default_lang)
    files = await export_files(store, user, texts, language, time.time())
    for written in _write_files(out, [(f.filename, f.data) for f in files]):
        print(written)
    return 0


def _write_files(folder: Path, files: list[tuple[str, bytes]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / name).write_bytes(data)
    return [folder / name for name, _ in files]


async def _restore(store: Store, settings: Settings, path: Path, yes: bool) -> int:
    if not yes and await store.list_users():
        print(
            f"ferry: {settings.data_dir} holds users; `ferry restore --yes {path}` replaces all of it",
            file=sys.stderr,
        )
        return 1
    await store.restore(path)
    print(f"Restored {settings.data_dir} from {path}")
    return 0
