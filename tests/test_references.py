"""Reference prompts of `paprec eval` (paprec_cli.references): the oracle's word is the truth table's,
history_word reads training items only (with its tie rule), unavailable references say why, and
`paprec eval --json` carries both under `results` and `paired`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_export_helpers import tiny_document, tiny_home, write_json
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.data.splits import leave_one_out
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home
from paprec_cli.references import (
    build_references,
    comparisons,
    most_frequent_word,
    parse_references,
    reference_prompts,
)
from paprec_cli.search.layout import Layout, PromptTokens

WORDS = {"red": 10, "blue": 11, "green": 12, "pale": 13, "skin": 14}
BASE = PromptTokens(shared=(1, 2), personal_default=(3,), personal={9: (4,)})


class StubCodec:
    """Words of WORDS are candidate tokens; "Skin Care" has no single token."""

    def candidate_vocab(self) -> np.ndarray:
        return np.asarray(sorted(WORDS.values()))

    def token_id(self, text: str) -> int:
        if text in WORDS:
            return WORDS[text]
        raise PaprecError(f"'{text}' is not a single token")


@dataclass
class StubDataset:
    item_attributes: list[list[str]]
    manifest: dict[str, Any] = field(default_factory=lambda: {"extras": []})
    name: str = "stub"
    rating_sequences: list[np.ndarray] = field(default_factory=list)
    has_rating_scale: bool = False


@dataclass
class StubData:
    dataset: StubDataset
    sequences: list[np.ndarray]

    @property
    def loo(self) -> Any:
        return leave_one_out(self.sequences)


def stub_data() -> StubData:
    # item:        1      2      3       4        5        6            7
    attrs = [[], ["red"], ["red"], ["blue"], ["blue"], ["blue"], ["Skin Care"], ["Skin Care", "pale"]]
    sequences = [
        np.zeros(0, np.int64),
        np.asarray([1, 2, 3, 4, 5]),  # train 1,2,3: red 2, blue 1 -> red; with val/test 4,5: blue 3 -> blue
        np.asarray([3, 1, 4, 5]),  # train 3,1: blue 1, red 1: a tie, red occurs later -> red
        np.asarray([6, 6, 7, 1, 2]),  # train: "Skin Care" 3 (no token), pale 1 -> pale; top not usable
        np.asarray([6, 1, 2]),  # train: "Skin Care" only -> no word
    ]
    return StubData(StubDataset(attrs), sequences)


def test_history_word_uses_training_items_only_and_breaks_ties() -> None:
    refs = build_references(["history_word"], BASE, Layout(0, 2, 1), stub_data(), "ranking",  # type: ignore[arg-type]
                            [1, 2, 3, 4], StubCodec())
    ref = refs["history_word"]
    assert ref.tokens is not None and ref.report["available"] is True
    # user 1: "blue" would win if the validation and test items (4, 5) were counted
    assert dict(ref.tokens.personal) == {1: (WORDS["red"],), 2: (WORDS["red"],), 3: (WORDS["pale"],)}
    assert ref.tokens.shared == BASE.shared and ref.tokens.personal_default == BASE.personal_default
    assert ref.report["users"] == 3 and ref.report["users_without_word"] == 1
    assert ref.report["top_not_usable"] == 2 and ref.report["missing_examples"] == ["Skin Care"]


def rated_data() -> StubData:
    """stub_data's users with ratings on a 1-5 scale (midpoint 3)."""
    data = stub_data()
    ratings = [
        np.zeros(0),
        np.asarray([2.0, 1.0, 5.0, 5.0, 5.0]),  # train red 2-3 + red 1-3 + blue 5-3 = blue 2 > red -3
        np.asarray([np.nan, 4.0, 1.0, 1.0]),  # train: blue unrated (0), red 4-3 = 1 -> red
        np.asarray([3.0, 3.0, 3.0, 5.0, 5.0]),  # train: all weights 0 -> the count: "Skin Care" (no token), pale
        np.asarray([4.0, 4.0, 4.0]),
    ]
    return StubData(StubDataset(data.dataset.item_attributes, rating_sequences=ratings, has_rating_scale=True),
                    data.sequences)


def test_liked_word_weighs_training_ratings_only() -> None:
    refs = build_references(["history_word", "liked_word"], BASE, Layout(0, 2, 1), rated_data(),  # type: ignore[arg-type]
                            "ranking", [1, 2, 3, 4], StubCodec())
    liked, counted = refs["liked_word"], refs["history_word"]
    assert liked.tokens is not None and liked.report["available"] is True
    # user 1: blue by rating weight (red is more frequent); the validation and test items (4, 5, rated 5)
    # never count; user 2: the unrated blue weighs 0; user 3: all weights 0 -> the count's order
    assert dict(liked.tokens.personal) == {1: (WORDS["blue"],), 2: (WORDS["red"],), 3: (WORDS["pale"],)}
    assert counted.tokens is not None and counted.tokens.personal[1] == (WORDS["red"],)
    assert "rating" in liked.report["rule"] and "3" in liked.report["rule"]


def test_liked_word_midpoint_comes_from_training_ratings_only() -> None:
    """A validation or test rating never moves the midpoint: here training ratings span 2-5 (midpoint 3.5)
    and a held-out 1-star rating would make the whole dataset's 3.0."""
    data = rated_data()
    data.dataset.rating_sequences[1] = np.asarray([2.0, 4.0, 5.0, 1.0, 1.0])  # train red 2, red 4, blue 5
    data.dataset.rating_sequences[2] = np.asarray([np.nan, 4.0, 1.0, 1.0])
    data.dataset.rating_sequences[3] = np.asarray([3.0, 3.0, 3.0, 1.0, 1.0])
    from paprec_cli.references import training_weights

    weighted = training_weights(data, "ranking")  # type: ignore[arg-type]
    assert weighted is not None and weighted[1] == 3.5
    assert weighted[0][1].tolist() == [-1.5, 0.5, 1.5] and weighted[0][2].tolist() == [0.0, 0.5]
    ref = build_references(["liked_word"], BASE, Layout(0, 2, 1), data, "ranking",  # type: ignore[arg-type]
                           [1, 2, 3, 4], StubCodec())["liked_word"]
    assert "3.5" in ref.report["rule"]
    assert ref.tokens is not None and ref.tokens.personal[1] == (WORDS["blue"],)  # blue +1.5 > red -1.0


def test_liked_word_needs_two_training_rating_values_whatever_the_held_out_ones_are() -> None:
    """Every training rating 3, held-out ratings 5: the liked rule has nothing to weigh by, so the reference is
    unavailable, as it is when the held-out ratings are 3 too (availability never reads held-out ratings)."""
    from paprec_cli.references import training_weights

    for held_out in (5.0, 3.0):
        data = rated_data()
        for user, seq in enumerate(data.sequences):
            if len(seq):
                data.dataset.rating_sequences[user] = np.asarray([3.0] * (len(seq) - 2) + [held_out] * 2)
        assert training_weights(data, "ranking") is None  # type: ignore[arg-type]
        ref = build_references(["liked_word"], BASE, Layout(0, 2, 1), data, "ranking",  # type: ignore[arg-type]
                               [1, 2, 3, 4], StubCodec())["liked_word"]
        assert ref.tokens is None and "single rating value" in ref.report["reason"]


def test_liked_word_is_unavailable_without_ratings() -> None:
    refs = build_references(["liked_word"], BASE, Layout(0, 2, 1), stub_data(), "ranking",  # type: ignore[arg-type]
                            [1, 2, 3, 4], StubCodec())
    assert refs["liked_word"].tokens is None and "no training ratings" in refs["liked_word"].report["reason"]


def test_ranked_words_with_weights() -> None:
    from paprec_cli.data.attributes import ranked_words

    attrs = [[], ["a", "x"], ["b"], ["a", "a"]]
    assert ranked_words([1, 2, 3], attrs) == ["a", "b", "x"]  # a counted once per item: 2
    assert ranked_words([1, 2, 3], attrs, [-1.0, 2.0, -0.5]) == ["b", "x", "a"]  # b 2, x -1, a -1.5
    assert ranked_words([1, 2], attrs, [0.0, 0.0]) == ["b", "a", "x"]  # all 0: the count's order (tie: latest)
    with pytest.raises(ValueError, match="NaN"):
        ranked_words([1, 2], attrs, [np.nan, 1.0])
    with pytest.raises(ValueError, match="weights"):
        ranked_words([1, 2], attrs, [1.0])


def test_most_frequent_word_tie_rule() -> None:
    attrs = [[], ["b"], ["a"], ["c"]]
    usable: dict[str, int | None] = {"a": 1, "b": 2, "c": None}
    assert most_frequent_word([1, 2], attrs, usable) == ("a", "a")  # tie: the latest occurrence wins
    assert most_frequent_word([2, 1], attrs, usable) == ("b", "b")
    assert most_frequent_word([1, 2, 2, 1], attrs, usable) == ("b", "b")  # tie, latest tie: b
    assert most_frequent_word([3, 3, 1], attrs, usable) == ("b", "c")
    assert most_frequent_word([], attrs, usable) == (None, None)


def test_second_personal_slot_keeps_the_default() -> None:
    base = PromptTokens(shared=(1,), personal_default=(3, 5))
    ref = build_references(["history_word"], base, Layout(0, 1, 2), stub_data(), "ranking",  # type: ignore[arg-type]
                           [1], StubCodec())["history_word"]
    assert ref.tokens is not None and dict(ref.tokens.personal) == {1: (WORDS["red"], 5)}


def test_unavailable_references_say_why() -> None:
    data = stub_data()
    refs = build_references(["oracle", "history_word"], BASE, Layout(0, 2, 0), data, "ranking",  # type: ignore[arg-type]
                            [1, 2], StubCodec())
    for name in ("oracle", "history_word"):
        assert refs[name].tokens is None and refs[name].report["available"] is False
        assert "no personal slot" in refs[name].report["reason"]
    refs = build_references(["oracle"], BASE, Layout(0, 2, 1), data, "ranking", [1], StubCodec())  # type: ignore[arg-type]
    assert refs["oracle"].tokens is None and "no truth table" in refs["oracle"].report["reason"]
    bare = StubData(StubDataset([[], [], []]), data.sequences)
    refs = build_references(["history_word"], BASE, Layout(0, 2, 1), bare, "ranking", [1], StubCodec())  # type: ignore[arg-type]
    assert "no item attributes" in refs["history_word"].report["reason"]
    refs = build_references(["history_word"], BASE, Layout(0, 2, 1), data, "ranking", [4], StubCodec())  # type: ignore[arg-type]
    assert refs["history_word"].tokens is None and "candidate vocabulary" in refs["history_word"].report["reason"]


def test_parse_references_and_comparisons() -> None:
    assert parse_references(None) == ("oracle", "history_word", "liked_word") == parse_references("all")
    assert parse_references("none") == ()
    assert parse_references("history_word, oracle") == ("oracle", "history_word")
    with pytest.raises(PaprecError, match="--references"):
        parse_references("oracle,bogus")
    names = comparisons(["manual", "shared", "personalized", "history_word"])
    assert names == {"shared_vs_manual": ("shared", "manual"), "personalized_vs_manual": ("personalized", "manual"),
                     "history_word_vs_manual": ("history_word", "manual"),
                     "personalized_vs_history_word": ("personalized", "history_word")}


# --- on the tiny synthetic model (a truth table and category/brand attributes) ---


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return tiny_home(tmp_path_factory.mktemp("home"))


def test_oracle_word_is_the_truth_tables(home: Home) -> None:
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import load_model
    from paprec_cli.plugins import load_registry

    dataset = load_dataset(home, "synthetic")
    codec = load_model(home.model_dir("synthetic-tiny-atomic"), home).codec
    task = load_registry().task("sequential")
    data = TaskData(dataset, 0)
    refs = reference_prompts(["oracle", "history_word"], tiny_document(home), data, task, codec)
    oracle = refs["oracle"]
    assert oracle.tokens is not None and oracle.report["not_in_vocabulary"] == 0
    truth = dataset.extra("truth")
    first = dict(zip(truth["user"].to_list(), [t[0] for t in truth["taste"].to_list()], strict=True))
    users = {ex.user for part in ("validation", "test") for ex in task.examples(data, part)}
    assert set(oracle.tokens.personal) == users and oracle.report["users"] == len(users)
    for user, tokens in oracle.tokens.personal.items():
        assert codec.token_text(tokens[0]) == first[dataset.user_raw_id(user)]
    history = refs["history_word"]
    assert history.tokens is not None and history.report["users"] == len(users)
    attributes = {a for attrs in dataset.item_attributes for a in attrs}
    assert {codec.token_text(t[0]) for t in history.tokens.personal.values()} <= attributes


def test_liked_word_on_the_synthetic_dataset_matches_a_hand_count(home: Home) -> None:
    """The liked word of each user, recomputed here from the stored interactions (training part: all but the
    last two, rating - 3 per interaction), is the reference's word; ratings align with the sequences."""
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import load_model
    from paprec_cli.plugins import load_registry

    dataset = load_dataset(home, "synthetic")
    assert dataset.has_rating_scale
    codec = load_model(home.model_dir("synthetic-tiny-atomic"), home).codec
    task = load_registry().task("sequential")
    data = TaskData(dataset, 0)
    liked = reference_prompts(["liked_word"], tiny_document(home), data, task, codec)["liked_word"]
    assert liked.tokens is not None and liked.report["available"] is True and "3" in liked.report["rule"]
    table = dataset.interactions.sort(["user_idx", "pos"])
    checked = 0
    for (user,), rows in table.group_by(["user_idx"], maintain_order=True):
        if int(user) not in liked.tokens.personal:  # type: ignore[arg-type]
            continue
        train = rows.head(rows.height - 2)
        assert dataset.rating_sequences[int(user)].tolist() == rows["rating"].to_list()  # type: ignore[arg-type]
        score: dict[str, float] = {}
        count: dict[str, int] = {}
        for item, rating in zip(train["item_idx"].to_list(), train["rating"].to_list(), strict=True):
            for attr in dict.fromkeys(dataset.item_attributes[item]):
                score[attr] = score.get(attr, 0.0) + rating - 3.0
                count[attr] = count.get(attr, 0) + 1
        best = max(score.values())
        top = {a for a, v in score.items() if abs(v - best) < 1e-9}
        word = codec.token_text(liked.tokens.personal[int(user)][0])  # type: ignore[arg-type]
        assert word in top, (user, word, top)  # every synthetic attribute is one vocabulary word
        if len(top) > 1:  # a tie on the rating weight: the more frequent attribute wins
            assert count[word] == max(count[a] for a in top), (user, word, top)
        checked += 1
    assert checked >= 30 and liked.report["top_not_usable"] == 0


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_eval_json_carries_references(home: Home, tmp_path: Path) -> None:
    path = write_json(tmp_path / "p.json", tiny_document(home))
    code, stdout, stderr = invoke("eval", "--prompts", str(path), "--home", str(home.root), "--device", "cpu",
                                  "--n-boot", "100", "--no-baselines", "--json")  # fmt: skip
    assert code == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    for name in ("oracle", "history_word", "liked_word"):
        assert set(out["results"][name]) == {"validation", "test"}
        assert out["references"][name]["available"] is True
        for pair in (f"{name}_vs_manual", f"personalized_vs_{name}"):
            stats = out["paired"][pair]["HR@10"]
            assert stats["n"] == 40 and stats["ci_low"] <= stats["mean_diff"] <= stats["ci_high"]
    assert "reference oracle: a word for 40 users" in stderr


@pytest.mark.slow
def test_eval_reports_unavailable_and_refuses_unknown(home: Home, tmp_path: Path) -> None:
    doc = tiny_document(home, personal_users=())
    doc["layout"]["n_personal"] = 0
    doc["shared"]["personal_default"] = doc["initial"]["personal"] = []
    path = write_json(tmp_path / "p.json", doc)
    code, stdout, stderr = invoke("eval", "--prompts", str(path), "--home", str(home.root), "--device", "cpu",
                                  "--n-boot", "50", "--no-baselines", "--json", "--references", "history_word")
    assert code == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    assert set(out["references"]) == {"history_word"} and out["references"]["history_word"]["available"] is False
    assert "history_word" not in out["results"] and "history_word_vs_manual" not in out["paired"]
    assert "reference history_word: unavailable: the run's layout has no personal slot" in stderr
    code, _, stderr = invoke("eval", "--prompts", str(path), "--home", str(home.root), "--references", "orcale")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "--references" in stderr


@pytest.mark.realdata
def test_history_word_on_beauty_skips_multi_word_attributes(tmp_path: Path) -> None:
    """Beauty: most users' most frequent attribute is a multi-word category ("Skin Care"): counted, and
    the word given is an attribute of one of the user's training items."""
    from conftest import shared_data

    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.model import build_codec
    from paprec_cli.plugins import load_registry

    folder = shared_data("beauty")
    home = Home.resolve(tmp_path)
    registry = load_registry()
    import_dataset(registry.dataset("beauty"), folder, home)
    dataset = load_dataset(home, "beauty")
    codec = build_codec(dataset, "atomic", [t.source for e in registry.tasks.values() for t in e.spec.templates])
    data = TaskData(dataset, 0)
    users = data.loo.users("test").tolist()
    refs = build_references(["oracle", "history_word"], BASE, Layout(0, 2, 1), data, "ranking", users, codec)
    assert refs["oracle"].report["available"] is False and "no truth table" in refs["oracle"].report["reason"]
    ref = refs["history_word"]
    assert ref.tokens is not None and ref.report["users"] + ref.report["users_without_word"] == len(users)
    assert ref.report["users"] > 0.9 * len(users) and ref.report["top_not_usable"] > 0
    assert any(" " in w for w in ref.report["missing_examples"])  # multi-word names were skipped
    for user in users[:200]:
        if user in ref.tokens.personal:
            word = codec.token_text(ref.tokens.personal[user][0])
            assert any(word in dataset.item_attributes[int(i)] for i in data.loo.train[user])


def test_history_words_rank_like_history_word_and_respect_the_allowed_set() -> None:
    from paprec_cli.references import WordLookup, history_words

    data = stub_data()
    words = history_words(data, "ranking", [1, 2, 3, 4], WordLookup(StubCodec()), 3)  # type: ignore[arg-type]
    # the first word is the history_word reference's; validation/test items (user 1: 4, 5, blue) never count,
    # else user 1's blue (3 items) would rank before red (2); user 3's "Skin Care" is no token
    assert words == {1: (WORDS["red"], WORDS["blue"]), 2: (WORDS["red"], WORDS["blue"]), 3: (WORDS["pale"],)}
    top1 = history_words(data, "ranking", [1, 2, 3, 4], WordLookup(StubCodec()), 1)  # type: ignore[arg-type]
    assert top1 == {1: (WORDS["red"],), 2: (WORDS["red"],), 3: (WORDS["pale"],)}
    narrowed = history_words(data, "ranking", [2, 3], WordLookup(StubCodec()), 3,  # type: ignore[arg-type]
                             allowed={WORDS["blue"], WORDS["pale"]})
    assert narrowed == {2: (WORDS["blue"],), 3: (WORDS["pale"],)}
    assert history_words(data, "ranking", [1], WordLookup(StubCodec()), 0) == {}  # type: ignore[arg-type]
