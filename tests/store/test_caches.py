"""The TinyDB store's caches of parsed files are bounded by bytes, and evicting never changes what
is read: a bot serving hundreds of people kept thousands of full message files (issue 14: memory
grew from 100 to over 200 MB in the 50-chat bench's first 6,000 answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.store import tinydb_base
from core.store.base import ConversationRecord, MessageRecord
from core.store.tinydb_files import FileCache
from core.store.tinydb_journal import Folds, Lines
from core.store.tinydb_store import TinyDBStore


def test_the_file_cache_keeps_the_most_recently_used_files_within_its_bytes() -> None:
    cache = FileCache(max_bytes=10)
    a, b, c = Path("a"), Path("b"), Path("c")
    cache.put(a, b"aaaa", "A")
    cache.put(b, b"bbbb", "B")
    assert cache.get(a, b"aaaa") == "A"  # a is now the most recently used
    cache.put(c, b"cccc", "C")  # 12 bytes: the least recently used (b) goes
    assert cache.size == 8
    assert cache.get(b, b"bbbb") is None
    assert (cache.get(a, b"aaaa"), cache.get(c, b"cccc")) == ("A", "C")
    cache.put(a, b"aaaaaa", "A2")  # replaced: counted once, at its new size
    assert cache.size == 10
    cache.drop(c)
    assert cache.size == 6


def test_a_file_larger_than_the_whole_cache_is_still_kept_while_it_is_the_newest() -> None:
    cache = FileCache(max_bytes=4)
    cache.put(Path("small"), b"ab", 1)
    cache.put(Path("big"), b"0123456789", 2)
    assert cache.get(Path("big"), b"0123456789") == 2
    assert cache.get(Path("small"), b"ab") is None
    assert cache.size == 10


def test_folds_are_bounded_by_the_bytes_of_their_journals() -> None:
    folds = Folds(max_bytes=100)
    steps: list[str] = []

    def fold(name: str, docs: tuple[dict[str, int], ...], size: int) -> list[int]:
        def step(value: list[int], doc: dict[str, int]) -> None:
            steps.append(name)
            value.append(doc["n"])

        return folds.fold(Path(name), Lines(docs, b"", size), list, step)

    one = ({"n": 1},)
    assert fold("x", one, 60) == [1]
    assert fold("x", (*one, {"n": 2}), 60) == [1, 2]  # only the new line folded
    assert steps == ["x", "x"]
    assert fold("y", one, 60) == [1]  # 120 bytes: x goes
    steps.clear()
    assert fold("x", (*one, {"n": 2}), 60) == [1, 2]
    assert steps == ["x", "x"]  # folded again from the first line, same value


@pytest.mark.asyncio
async def test_a_store_with_tiny_caches_reads_every_conversation_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tinydb_base, "FOLDS_BYTES", 512)
    store = TinyDBStore(tmp_path / "data")
    store._cache = FileCache(max_bytes=512)
    await store.open()
    try:
        ids = [f"c{i}" for i in range(20)]
        for round_ in range(3):
            for cid in ids:
                if round_ == 0:
                    await store.put_conversation(ConversationRecord(id=cid, scope=f"user:{cid}"))
                await store.append_messages(
                    [MessageRecord(f"{cid}-{round_}", cid, "user", f"{cid} says {round_} " + "x" * 100, float(round_))]
                )
        assert store._cache.size <= 512 + 4096  # the newest file may be larger than the budget alone
        for cid in ids:
            messages = await store.get_messages(cid)
            assert [m.content.split(" x")[0] for m in messages] == [f"{cid} says {r}" for r in range(3)]
            assert [m.seq for m in messages] == [0, 1, 2]
            conv = await store.get_conversation(cid)
            assert conv is not None and conv.message_count == 3
    finally:
        await store.close()
