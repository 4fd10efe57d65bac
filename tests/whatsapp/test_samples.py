"""Parse the real public export samples in ../shared/whatsapp-samples/ (skipped when absent).

The expected numbers were counted by reading each file: headers with ``grep``, then system
lines, media placeholders and deleted markers one by one (see the comments).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from core.whatsapp.archive import read_export
from core.whatsapp.parser import parse_export
from core.whatsapp.roles import detect_roles

SAMPLES = Path(__file__).parents[2].parent / "shared" / "whatsapp-samples"


@dataclass(frozen=True)
class Sample:
    file: str
    messages: int
    system: int
    senders: tuple[str, ...]
    order: str
    media: int
    deleted: int
    first: tuple[str, str, str]  # timestamp, sender, text of the first message


SAMPLE_CASES = [
    # 52 headers; 4 group notices without "Name: " (encryption, created, added ×2). 4 <attached:>.
    Sample(
        "Pustur-whatsapp-chat-parser-website___chat.txt",
        48,
        4,
        ("John", "Loris", "Emily"),
        "dmy",
        4,
        0,
        ("2019-06-20 15:58:53", "John", "Hey 👋"),
    ),
    # 50 headers; 8 system lines (encryption, created group, added ×4, removed, renamed, icon with
    # a stray BOM). "Carol:" has an empty body and stays a message. PTT (file attached) + <Media omitted>.
    Sample(
        "gesiscss-WhatsR__englishandroidampm.txt",
        42,
        8,
        ("Mallory", "Dave", "Alice", "Bob", "Carol"),
        "mdy",
        2,
        0,
        ("2018-01-29 12:24", "Mallory", "Hey! :)"),
    ),
    # 9 headers; "John Doe:." (no ": "), "created group" and "You were added" are not messages.
    Sample(
        "joweich-chat-miner__test_mmddyyyy_12hrs.txt",
        6,
        3,
        ("John Doe", "Jahn Doe", "John-John Doe", "John Doe 🤓", "🤓"),
        "mdy",
        0,
        0,
        ("2019-01-01 11:25", "John Doe", "Lorem ipsum dolor sit amet."),
    ),
    # 23 headers; the RLM-prefixed encryption notice from the number is system. 14 RLM placeholders
    # (image ×4, video ×2, audio, contact, sticker ×2, document ×3, GIF); 2 deleted.
    Sample(
        "starkdmi-whats_json__arabic_ios.txt",
        22,
        1,
        ("Dmitry S", "+40 521 028 61 88"),
        "dmy",
        14,
        2,
        ("2022-03-27 21:41:35", "Dmitry S", "Hello World"),
    ),
    # 41 headers; encryption notice + 2 "Gemiste spraakoproep" (missed calls). 22 media lines
    # (<Media weggelaten>, "(bestand bijgevoegd)", "null"); 7 "verwijderd" lines.
    Sample(
        "starkdmi-whats_json__deutch_android_media.txt",
        38,
        3,
        ("Dmitry S", "Elon"),
        "dmy",
        22,
        7,
        ("2022-03-18 14:56", "Dmitry S", "Hello"),
    ),
    # 60 headers; encryption notice + 2 missed voice calls. 31 media, 6 + 2 deleted.
    Sample(
        "starkdmi-whats_json__english_android.txt",
        57,
        3,
        ("Dmitry S", "Elon"),
        "dmy",
        31,
        8,
        ("2022-03-18 14:56", "Dmitry S", "Hello"),
    ),
    # 25 headers; encryption notice and 2 security-code notices are attributed to Elon Musk.
    # 13 <attached:> + 1 "image omitted"; 2 deleted.
    Sample(
        "starkdmi-whats_json__english_ios_media.txt",
        22,
        3,
        ("Dmitry S", "Elon Musk"),
        "mdy",
        14,
        2,
        ("2022-03-27 21:41:35", "Dmitry S", "Hello World"),
    ),
    # 23 headers; Indonesian encryption notice. 14 "tidak disertakan"; 2 deleted.
    Sample(
        "starkdmi-whats_json__indonesian_ios.txt",
        22,
        1,
        ("Dmitry S", "Elon Musk"),
        "mdy",
        14,
        2,
        ("2022-03-27 21:41:35", "Dmitry S", "Hello World"),
    ),
    # 7 headers; encryption notice. Dates 03/01 and 05/01 are ambiguous: day-first by default.
    Sample(
        "wolfschuh-whatsapp-chat-history-viewer__WhatsApp Chat with Jane Doe.txt",
        6,
        1,
        ("Wolfgang", "Jane Doe"),
        "dmy",
        2,
        0,
        ("2021-01-03 09:15", "Wolfgang", "Lorem ipsum dolor sit amet? 😉"),
    ),
]

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared/whatsapp-samples not present")


@needs_samples
def test_every_sample_has_expectations() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.txt")) == sorted(s.file for s in SAMPLE_CASES)


@needs_samples
@pytest.mark.parametrize("sample", SAMPLE_CASES, ids=[s.file.split("__")[0] for s in SAMPLE_CASES])
def test_sample_counts_and_senders(sample: Sample) -> None:
    path = SAMPLES / sample.file
    export = read_export(path.name.split("__")[-1], path.read_bytes())
    chat = parse_export(export.text)
    assert len(chat.messages) == sample.messages
    assert len(chat.system) == sample.system
    assert chat.senders == sample.senders
    assert chat.date_order == sample.order
    assert sum(1 for m in chat.messages if m.media) == sample.media
    assert sum(1 for m in chat.messages if m.deleted) == sample.deleted
    first = chat.messages[0]
    ts, sender, text = sample.first
    assert (first.timestamp, first.sender, first.text.split("\n")[0]) == (
        datetime.fromisoformat(ts),
        sender,
        text,
    )


@needs_samples
def test_sample_details() -> None:
    pustur = parse_export((SAMPLES / SAMPLE_CASES[0].file).read_text(encoding="utf-8"))
    texts = [m.text for m in pustur.messages]
    assert "Come on...\ndon't be so mysterious and show us!" in texts
    poll = next(t for t in texts if t.startswith("POLL:"))
    assert poll.count("\nOPTION: ") == 5
    assert texts[-1].endswith("\n- https://github.com/Pustur/whatsapp-chat-parser-website")

    arabic = parse_export((SAMPLES / SAMPLE_CASES[3].file).read_text(encoding="utf-8"))
    assert arabic.system[0].timestamp == datetime(2022, 3, 18, 14, 56)  # "٢:٥٦:٠٠ م"
    assert arabic.system[0].kind == "encryption"

    jane_path = SAMPLES / SAMPLE_CASES[-1].file
    jane = parse_export(jane_path.read_text(encoding="utf-8"))
    assert jane.date_order_ambiguous
    assert jane.messages[-1].timestamp == datetime(2021, 1, 5, 15, 22)  # "3:22 in the afternoon"
    assert "\n\n" in jane.messages[-1].text
    roles = detect_roles(jane, jane_path.name.split("__")[-1])
    assert (roles.assistant, roles.user, roles.evidence) == ("Jane Doe", "Wolfgang", ("filename",))

    ios = parse_export((SAMPLES / SAMPLE_CASES[6].file).read_text(encoding="utf-8"))
    roles = detect_roles(ios, None)
    assert (roles.assistant, roles.user, roles.conflict) == ("Elon Musk", "Dmitry S", False)
