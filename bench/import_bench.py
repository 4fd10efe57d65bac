"""Benchmark the WhatsApp import path on a 40,000-message export (WhatsApp's maximum).

Generates a realistic ChatGPT chat in memory (short user lines, long multi-line answers with
lists and blank lines, some media, deleted and edited messages), then times
read_export + parse_export + detect_roles + to_turns. Memory is measured on a second run under
tracemalloc, because tracing slows Python down and would distort the timing.

    .venv/bin/python bench/import_bench.py [--shape ios|android] [--messages 40000]

Targets: under 2 s and under 200 MB.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import subprocess
import sys
import time
import tracemalloc
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.whatsapp.archive import read_export
from core.whatsapp.parser import parse_export
from core.whatsapp.roles import detect_roles, to_turns

USER_LINES = [
    "Can you explain how compound interest works?",
    "What's a good recipe for dinner tonight? I have rice, eggs and spinach",
    "Translate 'good morning' to Indonesian",
    "thanks!",
    "Write a short poem about the sea 🌊",
    "How do I fix a flat bike tyre?",
]
ANSWER_PARAGRAPHS = [
    "Sure! Here's a quick overview:",
    "*Compound interest* means you earn interest on the interest you already earned.",
    "1. Start with the principal.\n2. Add the interest for one period.\n3. Repeat with the new total.",
    "- Rice: rinse twice\n- Eggs: beat with a pinch of salt\n- Spinach: add at the very end",
    "For example, 1,000 at 5% a year becomes 1,050 after one year and 1,102.50 after two.",
    "_Tip:_ on 12/01/2024 you could start a small savings plan and check it every month.",
    "Let me know if you'd like more detail on any step. 😊",
]


def _header(shape: str, ts: datetime) -> str:
    if shape == "ios":
        return f"[{ts.month}/{ts.day}/{ts:%y}, {ts.hour % 12 or 12}:{ts:%M:%S}\u202f{ts:%p}] "
    return f"{ts:%d/%m/%Y}, {ts:%H:%M} - "


def generate(shape: str, count: int, seed: int = 7) -> str:
    """A chat of ``count`` messages between "Dana" and "ChatGPT" in the given export shape."""
    rnd = random.Random(seed)
    ts = datetime(2024, 1, 12, 9, 0, 0)
    nl = "\r\n" if shape == "ios" else "\n"
    notice = "Messages and calls are end-to-end encrypted. Only people in this chat can read them."
    out = [_header(shape, ts) + (f"ChatGPT: \u200e{notice}" if shape == "ios" else notice)]
    for i in range(count):
        ts += timedelta(seconds=rnd.randint(5, 900))
        if i % 2 == 0:
            roll = rnd.random()
            if roll < 0.03:
                body = "\u200eimage omitted" if shape == "ios" else "<Media omitted>"
            elif roll < 0.04:
                body = "\u200eYou deleted this message." if shape == "ios" else "You deleted this message"
            elif roll < 0.06:
                body = rnd.choice(USER_LINES) + " <This message was edited>"
            else:
                body = rnd.choice(USER_LINES)
            out.append(f"{_header(shape, ts)}Dana: {body}")
        else:
            paragraphs = rnd.sample(ANSWER_PARAGRAPHS, rnd.randint(2, 5))
            out.append(f"{_header(shape, ts)}ChatGPT: " + "\n\n".join(paragraphs).replace("\n", nl))
    return nl.join(out) + nl


def pack(shape: str, text: str) -> tuple[str, bytes]:
    """The upload as WhatsApp shares it: an iOS zip with _chat.txt, or the Android .txt."""
    data = text.encode("utf-8")
    if shape == "android":
        return "WhatsApp Chat with ChatGPT.txt", data
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_chat.txt", data)
    return "WhatsApp Chat - ChatGPT.zip", buf.getvalue()


def run(filename: str, data: bytes) -> tuple[int, int, str, str, int]:
    """The import path a bot runs on an upload."""
    export = read_export(filename, data)
    chat = parse_export(export.text)
    roles = detect_roles(chat, filename)
    transcript = to_turns(chat, roles)
    return (
        len(chat.messages),
        len(transcript.turns),
        roles.assistant or "?",
        transcript.fingerprint,
        len(export.text),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["ios", "android"], default="ios")
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--emit", action="store_true", help="write the generated upload to stdout and exit")
    args = parser.parse_args()

    if args.emit:
        sys.stdout.buffer.write(pack(args.shape, generate(args.shape, args.messages))[1])
        return
    # Generate in a child process so that ru_maxrss below counts the import, not the generator.
    data = subprocess.run(
        [sys.executable, __file__, "--emit", "--shape", args.shape, "--messages", str(args.messages)],
        check=True,
        capture_output=True,
    ).stdout
    filename = "WhatsApp Chat - ChatGPT.zip" if args.shape == "ios" else "WhatsApp Chat with ChatGPT.txt"
    print(f"export: {args.shape}, {filename!r}, {args.messages} messages, {len(data) / 1e6:.1f} MB upload")

    start = time.perf_counter()
    messages, turns, assistant, fingerprint, text_len = run(filename, data)
    elapsed = time.perf_counter() - start
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"parsed: {messages} messages ({text_len / 1e6:.1f} M characters), {turns} turns, assistant={assistant!r}")
    print(f"        fingerprint sha256 {fingerprint[:16]}…")
    print(f"time:   {elapsed:.3f} s for read_export + parse_export + detect_roles + to_turns (target < 2 s)")
    print(f"memory: ru_maxrss {maxrss_mb:.1f} MB for the whole process after the import (target < 200 MB)")

    tracemalloc.start()
    run(filename, data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"        tracemalloc peak {peak / 1e6:.1f} MB during a second, traced import")


if __name__ == "__main__":
    main()
