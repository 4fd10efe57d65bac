"""Kill benchmark (issue 11): the real bot processes under load, SIGKILLed at seeded random moments.

For each messenger it runs ``--rounds`` rounds of ``--chats`` people × ``--messages`` messages with
``--kills`` kills per round (default 10 × 5 = 50 kills), each round on a fresh store and fresh
fakes, and prints messages sent, answered once, lost, answered twice and stubs left visible. Then
it measures the Signal loss window: how long no receive WebSocket is attached (so
signal-cli-rest-api drops every message, upstream #834) after 20 WebSocket drops, 5 restarts of
signal-cli-rest-api and 5 restarts of the bot; median and worst.

Run: ``.venv/bin/python -m bench.kill_bench [--messenger telegram,signal] [--rounds 10] [--kills 5]
[--chats 20] [--messages 5] [--seed 1] [--windows/--no-windows] [--traffic]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.reliability.harness import Load, Tally, Windows, signal_loss_windows, signal_round, telegram_round


async def bench(args: argparse.Namespace) -> None:
    """Run the rounds and print the figures."""
    root = Path(tempfile.mkdtemp(prefix="ferry-kill-bench-"))
    print(f"logs and stores under {root}", flush=True)
    for messenger in args.messenger.split(","):
        total = Tally()
        started = time.monotonic()
        for r in range(args.rounds):
            load = Load(
                chats=args.chats, messages=args.messages, kills=args.kills, seed=args.seed * 1000 + r,
                gap=args.gap, restart_delay=args.restart_delay,
            )  # fmt: skip
            workdir = root / f"{messenger}-{r}"
            workdir.mkdir()
            run = telegram_round if messenger == "telegram" else signal_round
            tally = await run(load, workdir)
            total.add(tally)
            print(f"  {messenger} round {r}: {tally.line()}", flush=True)
        print(f"{messenger}: {total.line()}  ({time.monotonic() - started:.0f} s)", flush=True)
        if total.stub_samples:
            print(f"  stubs seen, e.g. {total.stub_samples}", flush=True)
    if args.windows:
        workdir = root / "windows"
        workdir.mkdir()
        w = await signal_loss_windows(
            workdir, drops=args.drops, service_restarts=args.service_restarts, bot_restarts=args.bot_restarts,
            traffic=args.traffic, service_down=args.service_down,
        )  # fmt: skip
        busy = "a person writes after every reconnection" if args.traffic else "the bot idle between interruptions"
        print(f"Signal loss window ({busy}; no receive WebSocket attached, upstream drops every message):")
        print(f"  after a WebSocket drop:            {Windows.describe(w.ws_drops)}")
        restarts = Windows.describe(w.service_restarts)
        print(f"  after signal-cli-rest-api restart: {restarts} (from back up, down {args.service_down:g} s)")
        print(f"  after a bot restart (SIGKILL):     {Windows.describe(w.bot_restarts)} (from the kill)")
        print(f"  raw: drops {[round(x, 2) for x in w.ws_drops]}", flush=True)
        service, bot = [round(x, 2) for x in w.service_restarts], [round(x, 2) for x in w.bot_restarts]
        print(f"       service {service}, bot {bot}", flush=True)


def main() -> None:
    """Parse the arguments and run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--messenger", default="telegram,signal")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--chats", type=int, default=20)
    p.add_argument("--messages", type=int, default=5)
    p.add_argument("--gap", type=float, default=6.0, help="mean seconds between one person's messages")
    p.add_argument("--restart-delay", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--windows", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--drops", type=int, default=20)
    p.add_argument("--service-restarts", type=int, default=5)
    p.add_argument("--bot-restarts", type=int, default=5)
    p.add_argument("--traffic", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--service-down", type=float, default=5.0, help="seconds signal-cli-rest-api is down per restart")
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
