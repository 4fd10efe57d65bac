"""Telegram replicas (issue 16): answers a second with 1, 2 and 3 replicas, and with one SIGKILLed halfway.

Each run starts N real ``ferry telegram`` processes in webhook mode on one fresh PostgreSQL schema,
behind a round-robin entry on 127.0.0.1 (``tests/fakes/round_robin.py``), fed by the fake Bot API
(which posts up to ``max_connections`` updates at once, one chat's at a time, as Telegram does).
``--chats`` people each send ``--messages`` messages at once; the model answers at once (or
``--model-delay`` seconds between its three pieces). It prints, per run, answers a second from the
first message to the last answer, and what the people saw: sent, answered (once), lost, twice and
order violations (a chat's answers out of its messages' order). The kill runs SIGKILL replica 0
once half of the answers are visible; the others take its chats over.

The fakes, the model, PostgreSQL and every replica share this machine (and its other jobs): the
figures are relative to each other, not a capacity for a real deployment. Telegram's own sending
limit is lifted (``FERRY_TELEGRAM_SEND_RATE``) to measure the processes.

Usage: ``python bench/replica_bench.py [--replicas 1,2,3] [--chats 50] [--messages 4] [--kill/--no-kill]
[--model-delay 0] [--url postgresql://…]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from tests.reliability.replicas import ReplicaLoad, Replicas, ReplicaTally

DEFAULT_URL = os.environ.get("FERRY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def one_run(load: ReplicaLoad, url: str, root: Path) -> ReplicaTally:
    """One run on a schema of its own, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    workdir = root / f"r{load.replicas}-{'kill' if load.kill_after else 'plain'}-{schema}"
    workdir.mkdir(parents=True)
    try:
        async with Replicas(load, workdir, f"{url}?schema={schema}") as run:
            return await run.run()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def bench(args: argparse.Namespace) -> None:
    """Run every configuration and print a line each."""
    root = Path(tempfile.mkdtemp(prefix="ferry-replica-bench-"))
    counts = [int(n) for n in args.replicas.split(",")]
    load1, load5, load15 = os.getloadavg()
    print(
        f"replica bench: {args.chats} chats x {args.messages} messages sent at once, model delay "
        f"{args.model_delay:g} s, replicas {counts}, kill halfway: {'yes' if args.kill else 'no'}; "
        f"PostgreSQL {url_host(args.url)}; {os.cpu_count()} CPUs, load average {load1:.1f} {load5:.1f} {load15:.1f}; "
        f"logs under {root}",
        flush=True,
    )
    for kill in (False, True) if args.kill else (False,):
        for n in counts:
            if kill and n < 2:
                continue  # with one replica a kill leaves nobody to take over
            load = ReplicaLoad(
                replicas=n, chats=args.chats, messages=args.messages, model_delay=args.model_delay,
                kill_after=0.5 if kill else None, limit=args.limit,
            )  # fmt: skip
            tally = await one_run(load, args.url, root)
            label = f"{n} replica{'s' if n > 1 else ''}" + (", one SIGKILLed halfway" if kill else "")
            print(f"{label:32} {tally.per_second:6.1f} answers/s | {tally.line()}", flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)


def url_host(url: str) -> str:
    """The URL without credentials."""
    return url.split("@")[-1]


OPTIONS: dict[str, tuple[type, object]] = {
    "--replicas": (str, "1,2,3"),
    "--chats": (int, 50),
    "--messages": (int, 4),
    "--model-delay": (float, 0.0),
    "--limit": (float, 300.0),
    "--url": (str, DEFAULT_URL),
}


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for flag, (kind, default) in OPTIONS.items():
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
