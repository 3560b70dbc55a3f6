"""`paprec search --init manual`: the search starts from the manual template's words instead of random ones."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from helpers import invoke as _invoke

from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home
from paprec_cli.specs import Template

pytestmark = pytest.mark.slow
SMALL = ["--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
         "--batch-size", "32", "--max-rounds", "1", "--seed", "1", "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module")
def codec_and_vocab(tiny_home: Home):  # type: ignore[no-untyped-def]
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import load_model
    from paprec_cli.search.vocab import candidate_vocabulary

    bundle = load_model("synthetic-tiny-atomic", tiny_home, dataset=load_dataset(tiny_home, "synthetic"))
    return bundle.codec, candidate_vocabulary(bundle.codec)


def test_manual_start_is_the_template_words_around_the_argument(codec_and_vocab) -> None:  # type: ignore[no-untyped-def]
    from paprec_cli.search.vocab import manual_start

    codec, vocab = codec_and_vocab
    template = Template("t", "Here is the history of {user} : {history} try to recommend next item")
    start = manual_start(codec, vocab, template)
    kept = lambda ids: [codec.token_text(t) for t in ids]  # noqa: E731
    assert kept(start.prefix) == [w for w in ["Here", "is", "the", "history", "of"] if w not in start.skipped]
    assert kept(start.suffix) == [w for w in ["try", "to", "recommend", "next", "item"] if w not in start.skipped]
    assert ":" in start.between and ":" not in start.skipped  # between the slots: the argument brings its own ":"
    assert len(start.prefix) >= 3 and len(start.suffix) >= 3  # this small tokenizer still knows most words
    allowed = set(vocab.tolist())
    for word in set(start.skipped) - {":"}:  # a left-out word really is no trigger of this model
        with contextlib.suppress(PaprecError):  # not even a token: fine
            assert codec.token_id(word) not in allowed


def test_manual_start_reports_words_that_cannot_be_triggers(codec_and_vocab) -> None:  # type: ignore[no-untyped-def]
    from paprec_cli.search.vocab import manual_start

    codec, vocab = codec_and_vocab
    start = manual_start(codec, vocab, Template("t", "Which item for {user} ? ( 1 being lowest )"))
    assert [codec.token_text(t) for t in start.suffix] == ["being", "lowest"]
    assert set(start.skipped) == {"?", "(", "1", ")"}
    with pytest.raises(PaprecError, match="no word usable as a trigger"):
        manual_start(codec, vocab, Template("t", "{user} ? 1"))


def test_search_init_manual_records_the_layout_and_starts_from_the_manual_prompt(
    tiny_home: Home, tmp_path: Path, codec_and_vocab
) -> None:  # type: ignore[no-untyped-def]
    from paprec_cli.plugins import load_registry
    from paprec_cli.search.vocab import manual_start

    run = tmp_path / "run"
    code, out, err = _invoke("search", *SMALL, "--init", "manual", "--home", str(tiny_home.root),
                             "--run-dir", str(run), "--json")  # fmt: skip
    assert code == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    config = manifest["config"]
    codec, vocab = codec_and_vocab
    start = manual_start(codec, vocab, load_registry().task("sequential").manual())
    assert config["init"] == "manual"
    assert (config["n_prefix"], config["n_suffix"]) == (len(start.prefix), len(start.suffix))
    assert manifest["initial"]["shared"] == list(start.prefix + start.suffix)
    flat = " ".join(err.split())  # rich folds long lines
    assert "(manual initial prompt" in flat
    if start.skipped:
        assert f"left out the template words {' '.join(start.skipped)}" in flat


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--init", "manual", "--n-suffix", "3"], "not with --init manual"),
        (["--init", "template"], "--init"),
    ],
)
def test_init_refusals_exit_2_with_one_line(tiny_home: Home, args: list[str], needle: str) -> None:
    code, _, err = _invoke("search", *SMALL, *args, "--home", str(tiny_home.root))
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
