"""The model catalogue: family matching, safe defaults for unknown names, prices."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.catalogue import DEFAULT_PATH, Catalogue, ModelInfo


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(DEFAULT_PATH)


@pytest.mark.parametrize(
    ("asked", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-5", "gpt-5"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-5.1", "gpt-5"),
        ("o3", "o3"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o4-mini", "o4-mini"),
        ("llama3.1", "llama3.1"),
        ("llama3.1:8b", "llama3.1"),
        ("llama3.1:70b-instruct-q4_K_M", "llama3.1"),
        ("llama3.2-vision:11b", "llama3.2-vision"),
        ("qwen2.5:7b", "qwen2.5"),
        ("qwen2.5-coder:14b", "qwen2.5"),
        ("mistral:latest", "mistral"),
        ("meta-llama/llama3.1", "llama3.1"),
    ],
)
def test_names_match_their_family(catalogue: Catalogue, asked: str, family: str) -> None:
    info = catalogue.get(asked)
    assert info.name == family
    assert info.known


@pytest.mark.parametrize("asked", ["my-finetune", "", "   ", "gpt", "gpt-4x", "o5", "llama", "/", "ünïcödé:7b"])
def test_unknown_names_get_safe_defaults(catalogue: Catalogue, asked: str) -> None:
    info = catalogue.get(asked)
    assert not info.known
    assert info.name == asked
    assert info.context_window == 8192
    assert info.cost(1_000_000, 1_000_000) == 0.0
    assert not info.vision
    assert asked not in catalogue


def test_a_prefix_must_end_at_a_word_boundary() -> None:
    # Without a gpt-4o entry, "gpt-4o" must not be taken for gpt-4 (8k window, high price).
    catalogue = Catalogue.of([ModelInfo("gpt-4", context_window=8192, input_price=30.0)])
    assert not catalogue.get("gpt-4o").known
    assert catalogue.get("gpt-4-0613").name == "gpt-4"


def test_known_values(catalogue: Catalogue) -> None:
    gpt4o = catalogue.get("gpt-4o")
    assert (gpt4o.context_window, gpt4o.max_output_tokens) == (128000, 16384)
    assert (gpt4o.input_price, gpt4o.output_price) == (2.5, 10.0)
    assert gpt4o.vision and gpt4o.tools
    llama = catalogue.get("llama3.1:8b")
    assert llama.input_price == llama.output_price == 0.0
    assert "gpt-4o-mini" in catalogue
    assert "gpt-4o" in catalogue.names()


def test_every_entry_is_sane(catalogue: Catalogue) -> None:
    for name in catalogue.names():
        info = catalogue.get(name)
        assert info.name == name
        assert 0 < info.max_output_tokens <= info.context_window
        assert info.input_price >= 0 and info.output_price >= 0


@pytest.mark.parametrize(
    ("prompt", "completion", "expected"),
    [(0, 0, 0.0), (1_000_000, 0, 2.5), (0, 1_000_000, 10.0), (1000, 500, 0.0075), (-5, -5, 0.0)],
)
def test_cost(catalogue: Catalogue, prompt: int, completion: int, expected: float) -> None:
    assert catalogue.get("gpt-4o").cost(prompt, completion) == pytest.approx(expected)


def test_model_info_is_frozen(catalogue: Catalogue) -> None:
    with pytest.raises(AttributeError):
        catalogue.get("gpt-4o").context_window = 1  # type: ignore[misc]


def test_entries_inherit_the_default_section(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        "[default]\ncontext_window = 4096\nmax_output_tokens = 512\n\n"
        '[models."tiny"]\ninput_price = 1\n\n[models."Big-One"]\ncontext_window = 100000\nvision = true\n'
    )
    catalogue = Catalogue.load(path)
    assert catalogue.get("tiny") == ModelInfo("tiny", context_window=4096, max_output_tokens=512, input_price=1.0)
    assert catalogue.get("big-one:latest").context_window == 100000
    assert catalogue.get("big-one").vision
    unknown = catalogue.get("other")
    assert (unknown.context_window, unknown.max_output_tokens, unknown.known) == (4096, 512, False)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[models.x]\ncontext_window = 'big'\n", "context_window must be int"),
        ("[models.x]\ncontext_window = 0\n", "must be positive"),
        ("[models.x]\ninput_price = -1\n", "must not be negative"),
        ("[models.x]\nvision = 1\n", "vision must be bool"),
        ("[models.x]\ncontext = 5\n", "unknown key 'context'"),
        ("models = 3\n", "must be tables"),
        ("[models\n", "not valid TOML"),
    ],
)
def test_a_malformed_file_is_reported_clearly(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=complaint) as info:
        Catalogue.load(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the model catalogue"):
        Catalogue.load(tmp_path / "nope.toml")
