"""``ferry store copy FROM TO``: move an installation between a TinyDB folder and PostgreSQL."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from core.settings import Settings
from core.store.base import Store, StoreError
from core.store.store_copy import Counts, Dump, TinyDBDump, copy_store
from core.store.tinydb_store import TinyDBStore

BAR_WIDTH = 30


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store copy`` to the ``ferry`` parser."""
    store = sub.add_parser("store", help="operate on the store itself (copy between TinyDB and PostgreSQL)")
    actions = store.add_subparsers(dest="store_command", required=True)
    copy = actions.add_parser(
        "copy",
        help="copy everything from one store to another; run it again to resume",
        description="FROM and TO are each a TinyDB data folder or a postgresql:// URL. Stop the bots first.",
    )
    copy.add_argument("source", help="a TinyDB data folder (such as ./data) or a postgresql:// URL")
    copy.add_argument("destination", help="a TinyDB data folder or a postgresql:// URL")


def open_spec(spec: str, *, source: bool) -> tuple[Store, Dump]:
    """The store a command-line argument names, and what a copy reads from it besides the contract."""
    # psycopg is loaded by the command that uses it, never by the bots (which import this module).
    from core.store.postgres import PostgresStore, is_postgres_url
    from core.store.postgres.dump import PostgresDump

    if is_postgres_url(spec):
        # A copy can be re-run, so the destination need not wait for the disk at every commit.
        pg = PostgresStore(spec, wait_for_disk=source)
        return pg, PostgresDump(pg)
    root = Path(spec)
    if source and not (root / "schema.json").is_file():
        raise StoreError(f"{root} is not a Ferry data folder (it has no schema.json)")
    tiny = TinyDBStore(root)
    return tiny, TinyDBDump(tiny, root)


class ProgressBar:
    """A one-line bar on a terminal; a line per tenth on anything else (a log file)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._shown = -1
        self._started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if not self._tty and tenth == self._shown:
            return
        filled = done * BAR_WIDTH // max(total, 1)
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {stage:<13} "
            f"{time.monotonic() - self._started:6.0f} s"
        )
        if self._tty:
            self._out.write("\r" + line)
            if done == total:
                self._out.write("\n")
        else:
            self._out.write(line + "\n")
        self._out.flush()
        self._shown = tenth


def _show(name: str, c: Counts) -> str:
    return (
        f"{name:<12} users {c.users}, conversations {c.conversations}, messages {c.messages}, "
        f"tokens {c.tokens}, settings {c.meta_keys}, unanswered messages {c.unfinished}"
    )


async def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Copy, print both sides' counts, and return 0 when they agree."""
    from core.store.postgres import is_postgres_url
    del settings  # both stores are named on the command line
    if args.source == args.destination:
        print("ferry: the source and the destination are the same store", file=sys.stderr)
        return 2
    try:
        src, src_dump = open_spec(args.source, source=True)
        dst, dst_dump = open_spec(args.destination, source=False)
        await src.open()
        try:
            await dst.open()
            try:
                result = await copy_store(src, src_dump, dst, dst_dump, ProgressBar(sys.stderr))
                if is_postgres_url(args.destination):
                    await dst.flush()  # type: ignore[attr-defined]  # a PostgreSQL destination's last batch
            finally:
                await dst.close()
        finally:
            await src.close()
    except StoreError as e:
        print(f"ferry: {e}", file=sys.stderr)
        print("ferry: nothing copied so far is lost; run the same command again to continue", file=sys.stderr)
        return 1
    print(_show("source", result.source), file=out)
    print(_show("destination", result.destination), file=out)
    if not result.ok:
        print("The counts differ: the destination held other data, or the source changed during the copy.", file=out)
        return 1
    print("The counts agree. Point FERRY_DATABASE_URL (or FERRY_DATA_DIR) at the destination.", file=out)
    return 0
