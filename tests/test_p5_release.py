"""A released P5 checkpoint sees exactly P5's inputs.

The tests build a checkpoint in the release layout (DDP `module.` keys, tied embeddings,
`encoder.whole_word_embeddings.weight`) with a SentencePiece tokenizer trained here (a folder holding
only `spiece.model`, as the t5-small download), and check paprec's token ids and whole-word ids
against an independent implementation of P5's rules written below from P5's description
(src/pretrain_data.py: `tokenizer.encode(text, max_length=512, truncation=True)`; one whole-word id
per "▁"-word, 0 at `</s>`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.errors import PaprecError
from paprec_cli.inputs import InputProtocol, p5_protocol
from paprec_cli.model import load_model
from paprec_cli.specs import Word

spm = pytest.importorskip("sentencepiece")
pytest.importorskip("google.protobuf")

EOS = 1
T2_3 = "Here is the purchase history list of user_{} : \n {} \n try to recommend next item to the user"
T5_7 = "Pick the most suitable item from the following list and recommend to user_{} : \n {}"
T1_1 = "Which star rating will user_{} give item_{} ? ( 1 being lowest and 5 being highest )"

#: user -> items, oldest first; items first appear in increasing order (P5's sequential numbering).
SEQUENCES = {
    1: list(range(1, 6)),
    2: list(range(3, 31)),  # 28 items: more than 20
    3: list(range(1, 201)),  # 200 items: more than 512 tokens
    4: [2, 4, 6, 8, 31, 32],
    5: [5, 7, 9, 11, 13, 15, 17],
}


# -- P5's rules, independently ------------------------------------------------------------------------
def p5_input(processor: Any, text: str, max_length: int = 512) -> tuple[list[int], list[int]]:
    """P5's encoder input: SentencePiece pieces cut to `max_length - 1`, then `</s>`; a word number per
    piece (a piece starting with "▁" opens a new word), cut alike, then 0 for `</s>`."""
    pieces = processor.encode(text, out_type=str)
    ids = [processor.piece_to_id(p) for p in pieces][: max_length - 1] + [EOS]
    numbers, current = [], 0
    for piece in pieces:
        if piece.startswith("▁"):
            current += 1
        numbers.append(current)
    return ids, numbers[: len(ids) - 1] + [0]


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A P5-format dataset folder, a tokenizer folder with only `spiece.model`, and a release `.pth`."""
    root = tmp_path_factory.mktemp("p5release")
    data = root / "beauty-p5"
    data.mkdir()
    lines = [" ".join(str(x) for x in [u, *items]) for u, items in SEQUENCES.items()]
    (data / "sequential_data.txt").write_text("\n".join(lines) + "\n")
    corpus = [T2_3, T5_7, T1_1, "Which item of the following to recommend for", "user_1 user_2 item_3 -> , :"] * 30
    corpus += ["1.0 1.5 2.7 3.5 4.3 5.0 4.9 3.2"] * 20
    corpus += [" , ".join(str(i) for i in range(k, k + 40)) for k in range(1, 400, 7)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=300, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    tok = root / "t5-small"
    tok.mkdir()
    (tok / "spiece.model").write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = processor.get_piece_size() + 100  # T5 appends 100 <extra_id_N> tokens
    pth = root / "weights" / "beauty-small.pth"
    pth.parent.mkdir()
    torch.save(release_state(vocab), pth)
    return {"data": data, "tokenizer": tok, "pth": pth, "root": root}


def release_state(vocab: int) -> dict[str, torch.Tensor]:
    """The layout of P5's released files: T5 keys with tied copies, the whole-word embedding, `module.`."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)  # fmt: skip
    state = {k: v.clone() for k, v in T5ForConditionalGeneration(config).state_dict().items()}
    assert torch.equal(state["lm_head.weight"], state["shared.weight"])  # tied, as in the release
    state["encoder.whole_word_embeddings.weight"] = torch.randn(512, 32)
    return {f"module.{k}": v for k, v in state.items()}


def processor_of(release: dict[str, Path]) -> Any:
    return spm.SentencePieceProcessor(model_file=str(release["tokenizer"] / "spiece.model"))


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def imported(root: Path, release: dict[str, Path], indexing: str) -> Path:
    home = root / f"home-{indexing}"
    code, _, err = cli(home, "data", "import", "beauty", "--from", str(release["data"]), "--indexing", indexing)
    assert code == 0, err
    return home


def recommend(home: Path, release: dict[str, Path], user: int, *extra: str) -> dict[str, Any]:
    code, out, err = cli(home, "recommend", "--dataset", "beauty", "--model", str(release["pth"]), "--tokenizer",
                         str(release["tokenizer"]), "--user", str(user), "-k", "3", "--device", "cpu", "--json",
                         *extra)  # fmt: skip
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


# -- tests --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("user", "separator"), [(1, ","), (2, ","), (2, "->"), (3, ",")])
def test_recommend_feeds_p5_exact_inputs(release: dict[str, Path], tmp_path: Path, user: int, separator: str) -> None:
    home = imported(tmp_path, release, "sequential")
    answer = recommend(home, release, user, "--separator", separator)
    history = f" {separator} ".join(str(i) for i in SEQUENCES[user])  # Amazon: the whole history
    ids, wids = p5_input(processor_of(release), T2_3.format(user, history))
    assert answer["prompt"]["input_ids"] == ids
    assert answer["prompt"]["whole_word_ids"] == wids
    assert answer["prompt"]["inputs"] == "p5" and len(answer["items"]) == 3
    if user == 3:  # the 512-token cut, at the end of the text
        assert len(ids) == 512 and len(processor_of(release).encode(T2_3.format(user, history))) > 511


def test_random_separator_is_seeded_per_user(release: dict[str, Path], tmp_path: Path) -> None:
    home = imported(tmp_path, release, "sequential")
    first = recommend(home, release, 2, "--separator", "random")["prompt"]["input_ids"]
    assert recommend(home, release, 2, "--separator", "random")["prompt"]["input_ids"] == first
    processor = processor_of(release)
    options = [p5_input(processor, T2_3.format(2, f" {s} ".join(map(str, SEQUENCES[2]))))[0] for s in (",", "->")]
    assert first in options
    flips = {InputProtocol("p5", None, "random", 512, seed).separator_for(2, "test") for seed in range(20)}
    assert flips == {",", "->"}


def test_random_indexing_is_refused_in_one_line(release: dict[str, Path], tmp_path: Path) -> None:
    home = imported(tmp_path, release, "random")
    code, _, err = cli(home, "recommend", "--dataset", "beauty", "--model", str(release["pth"]), "--tokenizer",
                       str(release["tokenizer"]), "--user", "1", "--device", "cpu", "--json")  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert "random indexing" in err and "paprec data import beauty --from PATH --indexing sequential" in err


def test_tokenizer_found_beside_and_recorded(release: dict[str, Path], tmp_path: Path) -> None:
    from paprec_cli.data.store import load_dataset
    from paprec_cli.paths import Home

    home = imported(tmp_path, release, "sequential")
    data = load_dataset(Home.resolve(home), "beauty")
    with pytest.raises(PaprecError, match="no tokenizer.json or spiece.model in .*--tokenizer"):
        load_model(release["pth"], dataset=data)
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / "beauty.pth").write_bytes(release["pth"].read_bytes())
    (beside / "spiece.model").write_bytes((release["tokenizer"] / "spiece.model").read_bytes())
    found = load_model(beside / "beauty.pth", dataset=data)
    given = load_model(release["pth"], dataset=data, tokenizer=release["tokenizer"])
    assert found.codec.tokenizer_sha256 == given.codec.tokenizer_sha256 == given.config["tokenizer_sha256"]
    assert given.config["expects_indexing"] == "sequential" and given.config["input_protocol"] == "p5"
    assert given.codec.max_input_tokens == 512 and len(given.config["weights_sha256"]) == 64
    with pytest.raises(PaprecError, match="no such file or folder"):
        from paprec_cli.commands.common import tokenizer_arg

        tokenizer_arg(tmp_path / "missing")


def test_direct_5_7_and_rating_1_1_match_p5(release: dict[str, Path], tmp_path: Path) -> None:
    from paprec_tasks.common import ItemWords
    from paprec_tasks.direct import DirectTask
    from paprec_tasks.rating import RatingTask

    from paprec_cli.data.store import load_dataset
    from paprec_cli.paths import Home

    home = imported(tmp_path, release, "sequential")
    data = load_dataset(Home.resolve(home), "beauty")
    codec = load_model(release["pth"], dataset=data, tokenizer=release["tokenizer"]).codec
    processor = processor_of(release)
    candidates = [int(i) for i in np.random.default_rng(0).permutation(np.arange(1, 201))[:100]]
    words = ItemWords(200)
    values = {"user": (Word.user(4),), "candidates": tuple(words.listed(candidates))}
    got = codec.model_input(codec.encode(DirectTask().manual("5-7").render(values)))
    ids, wids = p5_input(processor, T5_7.format(4, " , ".join(map(str, candidates))))
    assert (got["input_ids"], got["whole_word_ids"]) == (ids, wids)

    class Ratings:  # what RatingTask reads from TaskData
        n_items = 200
        inputs = p5_protocol("beauty")

        class ratings:  # noqa: N801
            @staticmethod
            def part(part: str) -> Any:
                import polars as pl

                return pl.DataFrame({"user_idx": [5, 3], "item_idx": [17, 150], "rating": [4.0, 2.0]})

    for example in RatingTask()._build(Ratings(), "test"):  # type: ignore[arg-type]
        got = codec.model_input(codec.encode(RatingTask().manual("1-1").render(example.values)))
        item = example.values["item"][0].index
        ids, wids = p5_input(processor, T1_1.format(example.user, item))
        assert (got["input_ids"], got["whole_word_ids"]) == (ids, wids)
        assert example.argument[1].text == f"item_{item}"


def test_paprec_default_inputs_unchanged() -> None:
    """paprec's own protocol: last 20 items, `,`, no cut; "item 873" stays two words."""
    from paprec_tasks.rating import RatingTask

    assert (InputProtocol().history, InputProtocol().separator, InputProtocol().max_tokens) == (20, ",", None)
    assert p5_protocol("yelp").history == 20 and p5_protocol("beauty").history is None
    rendered = RatingTask().manual("1-1").render({"user": (Word.user(5),), "item": (Word.item(873),)})
    assert [w.text for w in rendered][5:8] == ["give", "item", "873"]


def test_one_decimal_ratings_read_as_the_decoded_number(release: dict[str, Path], tmp_path: Path) -> None:
    """A P5-style model trained here on "4.3" / "2.7" is read as 4.3 / 2.7 (not the expected first digit)."""
    from paprec_tasks.rating import RatingTask

    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import Recommender
    from paprec_cli.paths import Home

    home = imported(tmp_path, release, "sequential")
    data = load_dataset(Home.resolve(home), "beauty")
    bundle = load_model(release["pth"], dataset=data, tokenizer=release["tokenizer"])
    codec, template = bundle.codec, RatingTask().manual("1-1")
    pairs = [((3, 17), "4.3"), ((5, 150), "2.7")]
    prompts = [
        codec.encode(template.render({"user": (Word.user(u),), "item": (Word(f"item_{i}", "item", i),)}))
        for (u, i), _ in pairs
    ]
    targets = [codec.target_ids([Word(text, "rating")]) for _, text in pairs]
    rec = Recommender(bundle.model, codec, "cpu")
    optimizer = torch.optim.Adam(bundle.model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(200):
        optimizer.zero_grad()
        loss = rec.nll(codec.collate(prompts), targets).mean()
        loss.backward()
        optimizer.step()
        if float(loss.detach()) < 1e-3:
            break
    trained = {f"module.{k}": v.detach().clone() for k, v in bundle.model.t5.state_dict().items()}
    trained["module.encoder.whole_word_embeddings.weight"] = bundle.model.whole_word.weight.detach().clone()
    torch.save(trained, tmp_path / "rating.pth")
    reloaded = load_model(tmp_path / "rating.pth", dataset=data, tokenizer=release["tokenizer"])
    assert reloaded.codec.rating_readout == "decoded" and reloaded.config["rating_readout"] == "decoded"
    read = Recommender(reloaded.model, reloaded.codec, "cpu").predict_rating(reloaded.codec.collate(prompts))
    assert read.tolist() == pytest.approx([4.3, 2.7], abs=1e-6)


def test_parse_rating_never_substitutes() -> None:
    from paprec_cli.model.generate import parse_rating

    assert parse_rating(" 4.3") == pytest.approx(4.3) and parse_rating("5") == 5.0
    assert all(np.isnan(parse_rating(t)) for t in ("", "four", "4.3.1", "nan", "inf"))


def test_paprec_models_read_ratings_as_their_targets_say() -> None:
    import polars as pl

    from paprec_cli.training.run import rating_readout_for

    class Data:
        def __init__(self, ratings: list[float | None]) -> None:
            self.interactions = pl.DataFrame({"rating": ratings}, schema={"rating": pl.Float64})

    assert rating_readout_for(Data([1.0, 5.0, None])) == "expected"  # type: ignore[arg-type]
    assert rating_readout_for(Data([])) == "expected"  # type: ignore[arg-type]
    assert rating_readout_for(Data([4.0, 3.5])) == "decoded"  # type: ignore[arg-type]


def test_p5_decoding_matches_plain_t5_generate(release: dict[str, Path], tmp_path: Path) -> None:
    """--decoding p5: no whole-word embeddings, unconstrained 20-beam, length-normalised, non-items dropped."""
    from paprec_tasks.sequential import SequentialTask

    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import Recommender
    from paprec_cli.paths import Home

    home = imported(tmp_path, release, "sequential")
    data = load_dataset(Home.resolve(home), "beauty")
    bundle = load_model(release["pth"], dataset=data, tokenizer=release["tokenizer"])
    codec, template = bundle.codec, SequentialTask().manual("2-3")
    words = [template.render({"user": (Word.user(u),), "history": (Word.item(u), Word(","), Word.item(7))})
             for u in (1, 2, 4)]  # fmt: skip
    batch = codec.collate(codec.encode_batch(words))
    rec = Recommender(bundle.model, codec, "cpu", decoding="p5")
    top = rec.rank_all(batch, 5)
    # Independently: the checkpoint as a plain T5 (no whole-word embedding), transformers' beam search.
    with torch.no_grad():
        out = bundle.model.t5.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, num_beams=20,
                                       num_return_sequences=20, length_penalty=1.0, do_sample=False,
                                       max_new_tokens=int(codec.item_sequences().shape[1]) + 2,
                                       decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)  # fmt: skip
    texts = codec.tokenizer.decode_batch(out[:, 1:].tolist(), skip_special_tokens=True)
    expected, dropped = [], 0
    for row in range(3):
        kept: list[int] = []
        for text in texts[row * 20 : (row + 1) * 20]:
            ok = text.strip().isdigit() and 1 <= int(text.strip()) <= data.n_items and int(text.strip()) not in kept
            if ok:
                kept.append(int(text.strip()))
            dropped += not ok
        expected.append((kept + [0] * 5)[:5])
    assert top.tolist() == expected
    assert rec.p5_counts == {"generated": 60, "dropped": dropped}
    with torch.no_grad():  # the whole-word embedding plays no part under p5 decoding, and does under paprec's
        bundle.model.whole_word.weight.mul_(3.0)
    assert rec.rank_all(batch, 5).tolist() == expected
    plain = Recommender(bundle.model, codec, "cpu")
    assert plain._whole_word(batch) is batch.whole_word_ids and rec._whole_word(batch) is None
    atomic = type(codec)(codec.tokenizer, "atomic", data.n_users, data.n_items)
    with pytest.raises(PaprecError, match="--decoding p5: needs a model with subword ids"):
        Recommender(bundle.model, atomic, "cpu", decoding="p5")


def test_recommend_with_p5_decoding(release: dict[str, Path], tmp_path: Path) -> None:
    home = imported(tmp_path, release, "sequential")
    answer = recommend(home, release, 2, "--decoding", "p5")
    assert all(1 <= row["item_idx"] <= 200 for row in answer["items"]) and len(answer["items"]) <= 3
    # the counts are in the --json answer too (they were on stderr only): 20 beams, the non-items dropped
    decoding = answer["decoding"]
    assert decoding["name"] == "p5" and decoding["generated"] == 20 and 0 <= decoding["dropped"] <= 20
    assert decoding["short"] == (len(answer["items"]) < 3)
    assert len(answer["items"]) == min(3, 20 - decoding["dropped"])
    out = tmp_path / "recs.jsonl"
    code, stdout, err = cli(home, "recommend", "--dataset", "beauty", "--model", str(release["pth"]), "--tokenizer",
                            str(release["tokenizer"]), "--all-users", "-k", "3", "--device", "cpu", "--decoding",
                            "p5", "-o", str(out), "--json")  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(line["decoding"]["generated"] == 20 for line in lines)  # the -o file: per user
    summary = json.loads(stdout.strip().splitlines()[-1])["decoding"]  # --json: the totals
    assert summary == {"name": "p5", "generated": 20 * len(lines),
                       "dropped": sum(line["decoding"]["dropped"] for line in lines),
                       "short_users": sum(line["decoding"]["short"] for line in lines)}
    plain = recommend(home, release, 2)
    assert "decoding" not in plain  # paprec's decoding drops nothing: no field
    code, _, err = cli(home, "recommend", "--dataset", "beauty", "--model", str(release["pth"]), "--tokenizer",
                       str(release["tokenizer"]), "--user", "2", "-k", "3", "--device", "cpu", "--decoding", "p5")
    said = [line for line in err.splitlines() if line.startswith("--decoding p5:")]
    assert code == 0 and len(said) == 1 and "sequences generated" in said[0] and "dropped" in said[0], err
    code, _, err = cli(home, "recommend", "--dataset", "beauty", "--model", str(release["pth"]), "--tokenizer",
                       str(release["tokenizer"]), "--user", "2", "--decoding", "exact")  # fmt: skip
    assert code == 2 and err.startswith("Error: --decoding exact: expected one of paprec, p5")


@pytest.mark.realdata
def test_sequential_indexing_reproduces_p5_ids_on_beauty(tmp_path: Path) -> None:
    """On P5's Beauty file, `--indexing sequential` gives every user and item P5's own id."""
    from conftest import shared_data

    from paprec_cli.data.store import load_dataset
    from paprec_cli.paths import Home

    folder = shared_data("beauty")
    code, _, err = cli(tmp_path / "home", "data", "import", "beauty", "--from", str(folder), "--indexing", "sequential")
    assert code == 0, err
    data = load_dataset(Home.resolve(tmp_path / "home"), "beauty")
    lines = [[int(x) for x in line.split()] for line in (folder / "sequential_data.txt").read_text().splitlines()]
    assert all(data.user_index(str(u)) == u and data.sequences[u].tolist() == items for u, *items in lines)
    longer = sum(len(items) > 21 for _, *items in lines)  # test histories longer than 20 items
    assert (len(lines), longer) == (22363, 1019)  # 4.6% of Beauty's test users: whole history under P5's rules


def test_search_and_eval_with_a_p5_checkpoint_record_the_protocol(release: dict[str, Path], tmp_path: Path) -> None:
    home = imported(tmp_path, release, "sequential")
    run = tmp_path / "run"
    code, out, err = cli(home, "search", "--task", "sequential", "--dataset", "beauty", "--model", str(release["pth"]),
                         "--tokenizer", str(release["tokenizer"]), "--decoding", "p5", "--separator", "->",
                         "--n-suffix", "1", "--n-personal", "0", "--top-k", "2", "--grad-examples", "8",
                         "--max-rounds", "1", "--device", "cpu", "--run-dir", str(run), "--json")  # fmt: skip
    assert code == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    given = load_model(release["pth"], dataset=_dataset(home), tokenizer=release["tokenizer"])
    assert manifest["model"]["tokenizer_sha256"] == given.codec.tokenizer_sha256
    assert manifest["model"]["expects_indexing"] == "sequential" and manifest["model"]["surrogate_beams"] == 30
    assert manifest["protocol"]["inputs"] == {"name": "p5", "history": None, "separator": "->", "max_tokens": 512,
                                              "seed": 0}  # fmt: skip
    assert manifest["config"]["decoding"] == "p5" and manifest["config"]["tokenizer"] == str(release["tokenizer"])
    code, out, err = cli(home, "eval", str(run), "--n-boot", "10", "--no-baselines", "--device", "cpu", "--json")
    assert code == 0, err
    protocol = json.loads(out.strip().splitlines()[-1])["protocol"]
    assert protocol["decoding"]["name"] == "p5" and protocol["decoding"]["generated"] > 0
    all_dropped = protocol["decoding"]["dropped"] == protocol["decoding"]["generated"]
    assert ("warning" in protocol["decoding"]) == all_dropped
    assert ("warning: --decoding p5 dropped all" in err) == all_dropped
    assert protocol["tokenizer_sha256"] == given.codec.tokenizer_sha256 and protocol["inputs"]["separator"] == "->"


def _dataset(home: Path) -> Any:
    from paprec_cli.data.store import load_dataset
    from paprec_cli.paths import Home

    return load_dataset(Home.resolve(home), "beauty")


# -- id ranges (#17) ----------------------------------------------------------------------------------
def test_release_range_from_p5_file_names() -> None:
    from paprec_cli.model.id_range import release_range

    beauty = release_range(Path("ckpt/beauty-small.pth"))
    assert beauty is not None and (beauty.users, beauty.items) == (22363, 12101)
    sports = release_range(Path("Sports-Base.pth"))
    assert sports is not None and (sports.users, sports.items) == (35598, 18357)
    assert release_range(Path("my-finetune.pth")) is None and release_range(Path("beauty.pth")) is None


def test_tokenizer_range_stops_at_the_first_unknown_id() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from paprec_cli.model.codec import PromptCodec
    from paprec_cli.model.id_range import check_id_range, tokenizer_range

    words = ["<pad>", "</s>", "<unk>", "user_1", "user_2", "user_3", "1", "2", "3", "4"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    codec = PromptCodec(tok, "subword", 5, 4)
    found = tokenizer_range(codec, 5, 4)
    assert (found.users, found.items) == (3, None)
    with pytest.raises(PaprecError, match=r"x.pth: dataset 'd' has user ids up to 5, but this checkpoint stands "
                                          r"for users 1..3 only \(the tokenizer"):  # fmt: skip
        check_id_range(Path("x.pth"), codec, "d", 5, 4)
    assert (check_id_range(Path("x.pth"), codec, "d", 3, 4).users, tokenizer_range(codec, 3, 4).users) == (None, None)


def test_ids_beyond_a_release_range_are_refused_in_one_line(
    release: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset with more items than the checkpoint was trained on: exit 2 before any work, one line naming
    the dataset, its largest id and the checkpoint's range (P5's Beauty counts shrunk to fit the test)."""
    from paprec_cli.model import id_range

    home = imported(tmp_path, release, "sequential")
    assert recommend(home, release, 1)["items"]  # within P5's Beauty range: accepted
    info = load_model(release["pth"], dataset=_dataset(home), tokenizer=release["tokenizer"]).config["id_range"]
    assert (info["users"], info["items"]) == (22363, 12101) and "beauty-small.pth" in info["source"]
    monkeypatch.setitem(id_range.P5_RELEASE_RANGES, "beauty", (22363, 150))
    code, out, err = cli(home, "recommend", "--dataset", "beauty", "--model", str(release["pth"]), "--tokenizer",
                         str(release["tokenizer"]), "--user", "1", "--device", "cpu")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and err.startswith("Error: ") and not out
    assert "dataset 'beauty' has item ids up to 200" in err and "items 1..150 only" in err
    assert "P5's released beauty checkpoint" in err


def test_sweep_takes_tokenizer(release: dict[str, Path], tmp_path: Path) -> None:
    """`paprec sweep --model X.pth --tokenizer DIR`: every cell's search reads the checkpoint with that tokenizer."""
    home = imported(tmp_path, release, "sequential")
    out_dir = tmp_path / "sweep"
    args = ("sweep", "--task", "sequential", "--dataset", "beauty", "--model", str(release["pth"]), "--n-suffix", "1",
            "--n-personal", "0", "--selection", "surrogate", "--top-k", "2", "--grad-examples", "8", "--max-rounds",
            "1", "--n-boot", "10", "--no-plot", "--device", "cpu", "--json")  # fmt: skip
    code, _, err = cli(home, *args, "--out", str(out_dir))
    assert code == 2 and "no tokenizer.json or spiece.model" in err and "--tokenizer" in err
    assert not out_dir.exists()  # a sweep whose first cell could not start leaves nothing to refuse the fix
    code, out, err = cli(home, *args, "--out", str(out_dir), "--tokenizer", str(release["tokenizer"]))
    assert code == 0, err
    cell = json.loads((out_dir / "cells" / "suffix1-personal0-surrogate" / "manifest.json").read_text())
    given = load_model(release["pth"], dataset=_dataset(home), tokenizer=release["tokenizer"])
    assert cell["config"]["tokenizer"] == str(release["tokenizer"].resolve())
    assert cell["model"]["tokenizer_sha256"] == given.codec.tokenizer_sha256
    assert json.loads((out_dir / "sweep.json").read_text())["spec"]["tokenizer"] == str(release["tokenizer"].resolve())


def test_sweep_key_unchanged_without_tokenizer() -> None:
    from paprec_cli.sweep import SweepSpec

    spec = SweepSpec(task="sequential", dataset="synthetic")
    assert "tokenizer" not in spec.to_json()
    assert SweepSpec(task="sequential", dataset="synthetic", tokenizer="/t").key() != spec.key()


# -- user names (#17) ---------------------------------------------------------------------------------
T2_4 = "Given the following purchase history of {} : \n {} \n predict next possible item for the user"
T5_5 = "Which item of the following to recommend for {} ? \n {}"


def named_reviews(folder: Path) -> Path:
    """McAuley 2014 raw reviews: 7 users x 7 items, user u skipping item u (a 5-core block with one
    never-seen item per user), reviewerName varying per user (the list is per review, oldest first)."""
    import gzip

    names = {0: ["Jane Doe"] * 6, 1: ["J. Smith"] * 5 + ["John Smith"], 2: [None] * 6, 3: ["  "] * 6,
             4: ["Ana"] * 6, 5: [None] * 5 + ["Bob"], 6: [None] * 6}  # fmt: skip
    rows = []
    for u in range(7):
        for n, i in enumerate(i for i in range(7) if i != u):
            row: dict[str, object] = {"reviewerID": f"U{u}", "asin": f"A{i}", "overall": float(1 + (u + i) % 5),
                                      "unixReviewTime": 1000 * u + i}  # fmt: skip
            if names[u][n] is not None:
                row["reviewerName"] = names[u][n]
            rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "reviews_Beauty_5.json.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_reviewer_names_kept_and_written_where_p5_wrote_them(release: dict[str, Path], tmp_path: Path) -> None:
    from paprec_tasks.direct import DirectTask
    from paprec_tasks.rating import RatingTask
    from paprec_tasks.sequential import SequentialTask

    from paprec_cli.data.splits import TaskData
    from paprec_cli.inputs import PAPREC

    home = tmp_path / "home"
    code, _, err = cli(home, "data", "import", "beauty", "--from", str(named_reviews(tmp_path / "raw")),
                       "--indexing", "sequential")  # fmt: skip
    assert code == 0, err
    code, out, _ = cli(home, "data", "info", "beauty", "--json")
    assert json.loads(out.strip().splitlines()[-1])["users_with_name"] == 4
    data = _dataset(home)
    by_raw = {data.user_raw_id(u): name for u, name in data.user_names.items()}
    assert by_raw == {"U0": "Jane Doe", "U1": "John Smith", "U4": "Ana", "U5": "Bob"}  # latest review's name
    assert data.manifest["counts"]["with_name"] == 4

    p5 = TaskData(data, 0, negatives=1, inputs=p5_protocol("beauty"))
    jane, nameless = data.user_index("U0"), data.user_index("U2")
    seq = {ex.user: ex for ex in SequentialTask().examples(p5, "test")}
    texts = {tid: [w.text for w in SequentialTask().manual(tid).render(seq[jane].values)] for tid in ("2-3", "2-4")}
    assert texts["2-4"][6:8] == ["Jane", "Doe"] and f"user_{jane}" not in texts["2-4"]
    assert texts["2-3"][7] == f"user_{jane}"  # P5 writes user_N in 2-3
    assert SequentialTask().manual("2-4").render(seq[nameless].values)[6] == Word.user(nameless)  # no name: user_N
    assert seq[jane].argument[0] == Word.user(jane)  # the searched argument keeps the id
    own = {ex.user: ex for ex in SequentialTask().examples(TaskData(data, 0, inputs=PAPREC), "test")}
    assert SequentialTask().manual("2-4").render(own[jane].values)[6] == Word.user(jane)  # paprec's models: user_N
    direct = {ex.user: ex for ex in DirectTask().examples(p5, "test")}
    assert [w.text for w in DirectTask().manual("5-5").render(direct[jane].values)][8:10] == ["Jane", "Doe"]
    assert all(w.text != "Jane" for w in DirectTask().manual("5-7").render(direct[jane].values))
    rating = [ex for ex in RatingTask().examples(p5, "train") if ex.user == data.user_index("U4")]
    assert "Ana" in [w.text for w in RatingTask().manual("1-6").render(rating[0].values)]
    assert "Ana" not in [w.text for w in RatingTask().manual("1-1").render(rating[0].values)]

    # token ids and whole-word ids as P5 builds them (its tokenizer, its rules: one word per "▁"-word)
    codec = load_model(release["pth"], dataset=data, tokenizer=release["tokenizer"]).codec
    history = " , ".join(str(i) for i in data.sequences[jane][:-1])
    got = codec.model_input(codec.encode(SequentialTask().manual("2-4").render(seq[jane].values)))
    ids, wids = p5_input(processor_of(release), T2_4.format("Jane Doe", history))
    assert (got["input_ids"], got["whole_word_ids"]) == (ids, wids)
    candidates = " , ".join(str(i) for i in direct[jane].candidates or ())
    got = codec.model_input(codec.encode(DirectTask().manual("5-5").render(direct[jane].values)))
    expected = p5_input(processor_of(release), T5_5.format("Jane Doe", candidates))
    assert (got["input_ids"], got["whole_word_ids"]) == expected


def test_p5_history_rule_follows_the_source_dataset_not_its_local_name(tmp_path: Path) -> None:
    """Beauty imported as `p5beauty` is still Amazon: P5 feeds the whole history (no silent 20-item cap)."""
    from paprec_cli.data.store import Dataset
    from paprec_cli.inputs import inputs_for

    renamed = Dataset(name="p5beauty", folder=tmp_path, manifest={"dataset": "beauty", "name": "p5beauty"})
    assert renamed.source_name == "beauty"
    assert inputs_for({"input_protocol": "p5"}, renamed.source_name).history is None
    yelp = Dataset(name="mine", folder=tmp_path, manifest={"dataset": "yelp", "name": "mine"})
    assert inputs_for({"input_protocol": "p5"}, yelp.source_name).history == 20
    old = Dataset(name="sports", folder=tmp_path, manifest={"name": "sports"})  # manifest without the field
    assert old.source_name == "sports"


def test_p5_warning_when_every_generated_sequence_is_dropped() -> None:
    from paprec_cli.eval_report import p5_warning

    assert p5_warning({"generated": 40, "dropped": 40}) == (
        "warning: --decoding p5 dropped all 40 generated sequences (none is an item id of the dataset), so every "
        "ranking metric is 0; check that the checkpoint was trained on this dataset with its indexing, or use "
        "--decoding paprec")
    assert p5_warning({"generated": 40, "dropped": 39}) is None
    assert p5_warning({"generated": 0, "dropped": 0}) is None


def test_eval_warns_when_p5_decoding_drops_every_sequence(release: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint whose every output is not an item id: eval's metrics are 0 by construction; it says so on
    stderr and in `protocol.decoding.warning` (it said nothing)."""
    from paprec_cli.model import generate

    home = imported(tmp_path, release, "sequential")
    run = tmp_path / "run"
    code, _, err = cli(home, "search", "--task", "sequential", "--dataset", "beauty", "--model", str(release["pth"]),
                       "--tokenizer", str(release["tokenizer"]), "--n-suffix", "1", "--n-personal", "0",
                       "--grad-examples", "8", "--max-rounds", "1", "--device", "cpu", "--run-dir", str(run),
                       "-q")  # fmt: skip
    assert code == 0, err
    real = generate.generate_texts

    def no_items(*args: Any, **kwargs: Any) -> list[str]:
        return ["not an item" for _ in real(*args, **kwargs)]

    monkeypatch.setattr(generate, "generate_texts", no_items)
    code, out, err = cli(home, "eval", str(run), "--decoding", "p5", "--n-boot", "10", "--no-baselines",
                         "--device", "cpu", "--json")
    assert code == 0, err
    decoding = json.loads(out.strip().splitlines()[-1])["protocol"]["decoding"]
    assert decoding["dropped"] == decoding["generated"] > 0
    assert decoding["warning"].startswith(f"warning: --decoding p5 dropped all {decoding['generated']} generated")
    assert decoding["warning"] in err
