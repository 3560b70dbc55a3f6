"""Issue #16, part 3: every artefact paprec reads is validated on load, and a damaged one is a one-line
`Error:` naming the file, the field and the fix, exit code 2, with nothing written.

Model folders (`config.json`, `codec.json`, `training.json`), `paprec models list` showing a broken model,
prompts documents (`--prompts FILE`, a run's `prompts.json`, CSV/Parquet rows), and truncated binaries
(dataset Parquet, model weights, the training checkpoint on `train --resume`). One tiny home per module
(`helpers.make_home` plus one search run and a copy of the model); each test damages its own copy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, last_json, make_home

from paprec_cli.paths import Home

MODEL = "synthetic-tiny-atomic"
RUN = ["search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
       "--batch-size", "64", "--max-rounds", "1", "--n-personal", "1", "--n-suffix", "1", "--device", "cpu", "-q",
       "--protocol", "paper"]
TRAIN = ["train", "--dataset", "synthetic", "--size", "tiny", "--tasks", "sequential", "--val-users", "20",
         "--device", "cpu", "--batch-size", "32", "--epochs", "1", "--name", "t1", "-q"]
#: The test model's size is "custom" (no `paprec train --size`) and it has no training.json: the command's shape.
RETRAIN = (f"retrain the model (`paprec train --dataset DATASET --size SIZE --name {MODEL} --force` with the dataset, "
           "size and options it was trained with)")
REEXPORT = "re-export it with `paprec export-prompts`"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The tiny home, one finished search run `r1` and a second copy of the model (`other`)."""
    home = make_home(tmp_path_factory.mktemp("base"))
    code, _, err = invoke(*RUN, "--home", str(home.root), "--run-dir", str(home.runs / "r1"))
    assert code == 0, err
    shutil.copytree(home.model_dir(MODEL), home.model_dir("other"))
    return home


@pytest.fixture
def home(base: Home, tmp_path: Path) -> Home:
    """This test's own copy of the base home (safe to damage)."""
    shutil.copytree(base.root, tmp_path / "home", ignore=shutil.ignore_patterns("*.lock", ".lock"))
    return Home.resolve(tmp_path / "home")


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (lock files aside): equal snapshots mean nothing was written."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith("lock")}  # fmt: skip


def one_error(code: int, err: str) -> str:
    """The command failed with exit 2 and exactly one `Error:` line, the last, and no traceback."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, (code, err)
    return errors[0]


def fails_cleanly(home: Home, *args: str) -> str:
    """Run `paprec ARGS --home HOME`: a one-line error, and the home byte for byte as before."""
    before = snapshot(home.root)
    line = one_error(*invoke(*args, "--home", str(home.root))[::2])
    assert snapshot(home.root) == before
    return line


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(change(data)), encoding="utf-8")


def set_in(keys: tuple[str, ...], value: object) -> Callable[[Any], Any]:
    def change(data: Any) -> Any:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return data

    return change


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


RECOMMEND = ("recommend", "--dataset", "synthetic", "--user", "1", "--device", "cpu", "--model", MODEL)

# -- 1. model artefacts validated on load ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "change", "needle"),
    [
        ("config.json", set_in(("dims", "num_heads"), 0), "field 'dims.num_heads': input should be greater than 0"),
        ("config.json", set_in(("dims",), "128"), "field 'dims': input should be a valid dictionary"),
        ("config.json", set_in(("dims", "feed_forward_proj"), "swishy"), "field 'dims.feed_forward_proj'"),
        ("config.json", set_in(("dims", "d_model"), "32"), "field 'dims.d_model': input should be a valid integer"),
        ("config.json", set_in(("dims", "num_head"), 2), "field 'dims.num_head': extra inputs are not permitted"),
        ("config.json", lambda d: {k: v for k, v in d.items() if k != "dims"}, "a paprec model's config needs 'dims'"),
        ("config.json", lambda d: [d], "expected a JSON object, found list"),
        ("codec.json", set_in(("n_users",), "40"), "field 'n_users': input should be a valid integer (found '40')"),
        ("codec.json", set_in(("id_scheme",), "atom"), "field 'id_scheme'"),
        ("codec.json", lambda d: [d], "expected a JSON object, found list"),
    ],
)
def test_damaged_model_file_is_one_line_on_load(home: Home, file: str, change: Callable[[Any], Any],
                                                needle: str) -> None:
    path = home.model_dir(MODEL) / file
    edit_json(path, change)
    line = fails_cleanly(home, *RECOMMEND)
    assert f"{path}:" in line and needle in line and RETRAIN in line, line
    # `models list` still lists every model and marks this one broken, with the same reason
    code, out, err = invoke("models", "list", "--json", "--home", str(home.root))
    assert code == 0, err
    rows = {row["name"]: row for row in last_json(out)["models"]}
    assert set(rows) == {MODEL, "other"}
    assert rows[MODEL]["broken"] == line.removeprefix("Error: ") and rows["other"]["broken"] is None
    assert rows["other"]["dataset"] == "synthetic"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: [], "expected a JSON object, found list"),
        (lambda d: {"epochs": "3"}, "field 'epochs': input should be a valid integer (found '3')"),
        (lambda d: {"test": {"sequential": {"HR@10": "0.2"}}}, "field 'test.sequential.HR@10'"),
        (lambda d: {"tasks": "sequential"}, "field 'tasks': input should be a valid list"),
    ],
)
def test_damaged_training_json(home: Home, change: Callable[[Any], Any], needle: str) -> None:
    path = home.model_dir(MODEL) / "training.json"
    path.write_text(json.dumps(change({})), encoding="utf-8")
    line = fails_cleanly(home, "models", "info", MODEL)
    assert f"{path}:" in line and needle in line and RETRAIN in line, line
    before = snapshot(home.root)
    code, out, err = invoke("models", "list", "--home", str(home.root))
    assert code == 0 and snapshot(home.root) == before, err
    assert "broken" in out and "other" in out  # the table has a status column and keeps the other model
    assert "training.json:" in out and str(path) not in out  # the file named inside the row's folder
    code, out, err = invoke("models", "list", "--json", "--home", str(home.root))
    rows = {row["name"]: row for row in last_json(out)["models"]}
    assert needle in str(rows[MODEL]["broken"]) and rows["other"]["broken"] is None


def test_models_list_without_broken_models_has_no_status_column(home: Home) -> None:
    code, out, err = invoke("models", "list", "--home", str(home.root))
    assert code == 0, err
    assert "status" not in out and "broken" not in out


def test_a_good_training_json_is_read_and_shown(home: Home) -> None:
    record = {"tasks": ["sequential"], "epochs": 2, "best_epoch": 1, "test": {"sequential": {"HR@10": 0.25}},
              "baselines": {"popularity": {"sequential": {"HR@10": None}}}}  # fmt: skip
    (home.model_dir(MODEL) / "training.json").write_text(json.dumps(record), encoding="utf-8")
    code, out, err = invoke("models", "list", "--json", "--home", str(home.root))
    row = next(r for r in last_json(out)["models"] if r["name"] == MODEL)
    assert (row["epochs"], row["tasks"], row["broken"]) == (2, ["sequential"], None)
    code, out, err = invoke("models", "info", MODEL, "--home", str(home.root))
    assert code == 0 and "HR@10 -" in out, err  # a null baseline metric is shown as such, not a crash


def test_default_model_names_unreadable_model_folders(home: Home) -> None:
    from paprec_cli.errors import PaprecError
    from paprec_cli.registry import default_model

    shutil.rmtree(home.model_dir("other"))
    home.model_dir(MODEL).rename(home.model_dir("mine"))
    edit_json(home.model_dir("mine") / "config.json", lambda d: [d])
    with pytest.raises(PaprecError, match=r"no trained model for dataset 'synthetic' .*1 unreadable model "
                                          r"folder\(s\): mine; see `paprec models list`"):
        default_model(home, "synthetic")


def test_activations_accepted_are_transformers_activations() -> None:
    from transformers.activations import ACT2FN

    from paprec_cli.model.records import ACTIVATIONS, Dims

    assert ACTIVATIONS.issubset(ACT2FN)
    dims = {"d_model": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 1, "d_kv": 8, "d_ff": 8}
    for good in ("relu", "gated-gelu", "gelu_new", "gated-silu"):
        Dims.model_validate({**dims, "feed_forward_proj": good})
    for bad in ("foo", "gated-foo", "ungated-gelu", "gated-gated-gelu", ""):
        with pytest.raises(ValueError, match="expected an activation"):
            Dims.model_validate({**dims, "feed_forward_proj": bad})


def test_training_state_json_damaged_is_one_line(tmp_path: Path) -> None:
    from paprec_cli.errors import PaprecError
    from paprec_cli.training.state import read_state

    folder = tmp_path / "t1"
    folder.mkdir()
    for text, needle in (("[]", "expected a JSON object, found list"), ('{"options": {}, "epoch": "x"}', "damaged"),
                         ('{"epo', "not valid JSON")):  # fmt: skip
        (folder / "state.json").write_text(text, encoding="utf-8")
        with pytest.raises(PaprecError, match=needle) as info:
            read_state(folder, "t1")
        message = str(info.value)
        assert str(folder / "state.json") in message and "remove the damaged resume state" in message
        assert "--force" not in message  # --force would replace a finished model of that name


# -- 3. prompts documents ------------------------------------------------------------------------------------


def _prompts(base: Home) -> dict[str, Any]:
    doc = json.loads((base.runs / "r1" / "prompts.json").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _token(doc: dict[str, Any]) -> dict[str, Any]:
    token = doc["shared"]["suffix"][0]
    assert isinstance(token, dict)
    return token


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["layout"].update(n_suffix="1"), "field 'layout.n_suffix': input should be a valid integer"),
        (lambda d: d["layout"].update(n_suffix=-1), "field 'layout.n_suffix': input should be greater than or equal"),
        (lambda d: d["layout"].update(n_suffix=3), "field 'shared.suffix' has 1 token(s) but layout.n_suffix is 3"),
        (lambda d: d["layout"].pop("n_personal"), "field 'layout.n_personal' is missing"),
        (lambda d: d["layout"].update(template="[suffix] {argument}"), "field 'layout.template'"),
        (lambda d: d["personal"].update({"0": [_token(d)]}), "key 'personal.0': a user index is 1, 2, ..."),
        (lambda d: d["personal"].update({"999999": [_token(d)]}),
         "field 'personal.999999': user index 999999 is out of range for dataset 'synthetic' (users 1..40)"),
        (lambda d: d["users"].update({"41": "u41"}), "field 'users.41': user index 41 is out of range"),
        (lambda d: d["personal"].update({"3": [_token(d), _token(d)]}),
         "field 'personal.3' has 2 token(s) but layout.n_personal is 1"),
        (lambda d: _token(d).update(id=99999), "field 'shared.suffix.0.id': token id 99999 is outside the vocabulary"),
        (lambda d: _token(d).update(id=-1), "field 'shared.suffix.0.id': input should be greater than or equal to 0"),
    ],
)
def test_edited_prompts_file_is_one_line(base: Home, tmp_path: Path, change: Callable[[Any], Any],
                                         needle: str) -> None:
    doc = _prompts(base)
    change(doc)
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    output = tmp_path / "answers.jsonl"
    for args in (("eval", "--prompts", str(path), "--device", "cpu"),
                 ("recommend", "--prompts", str(path), "--user", "3", "--device", "cpu", "-o", str(output))):
        before = snapshot(tmp_path)
        line = one_error(*invoke(*args, "--home", str(base.root))[::2])
        assert f"{path}:" in line and needle in line and REEXPORT in line, line
        assert snapshot(tmp_path) == before and not output.exists()


def test_edited_prompts_of_a_run_is_one_line(home: Home) -> None:
    path = home.runs / "r1" / "prompts.json"
    edit_json(path, set_in(("layout", "n_prefix"), "two"))
    for args in (("eval", "r1", "--device", "cpu"), ("export-prompts", "r1", "-o", str(home.root / "out.csv"))):
        line = fails_cleanly(home, *args)
        assert f"{path}: field 'layout.n_prefix': input should be a valid integer (found 'two')" in line, line


@pytest.fixture(scope="module")
def exports(base: Home, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The run's prompts with one personalized user, exported as CSV and Parquet."""
    folder = tmp_path_factory.mktemp("exports")
    doc = _prompts(base)
    doc["personal"]["3"], doc["users"]["3"] = [_token(doc)], "raw-3"
    source = folder / "doc.json"
    source.write_text(json.dumps(doc), encoding="utf-8")
    out = {}
    for fmt in ("csv", "parquet"):
        out[fmt] = folder / f"ok.{fmt}"
        code, _, err = invoke("export-prompts", str(source), "-o", str(out[fmt]), "--home", str(base.root))
        assert code == 0, err
    return out


def _damaged_csv(good: Path, target: Path, ids: str, token_id: int) -> None:
    text = good.read_text(encoding="utf-8")
    assert f"\n3,raw-3,[{token_id}]," in text
    target.write_text(text.replace(f"\n3,raw-3,[{token_id}],", f"\n3,raw-3,\"{ids}\","), encoding="utf-8")


@pytest.mark.parametrize(("ids", "found"), [('["abc"]', "'abc'"), ("[1.5]", "1.5"), ("[true]", "True")])
def test_non_numeric_token_ids_in_csv(base: Home, exports: dict[str, Path], tmp_path: Path, ids: str,
                                      found: str) -> None:
    bad = tmp_path / "bad.csv"
    _damaged_csv(exports["csv"], bad, ids.replace('"', '""'), _token(_prompts(base))["id"])
    target = tmp_path / "again.json"
    for args in (("eval", "--prompts", str(bad), "--device", "cpu"), ("export-prompts", str(bad), "-o", str(target))):
        line = one_error(*invoke(*args, "--home", str(base.root))[::2])
        assert f"{bad}:3: field 'token_ids.0': input should be a valid integer (found {found})" in line, line
        assert REEXPORT in line and not target.exists()


def test_non_numeric_token_ids_in_parquet(base: Home, exports: dict[str, Path], tmp_path: Path) -> None:
    import polars as pl

    table = pl.read_parquet(exports["parquet"])
    meta = pl.read_parquet_metadata(exports["parquet"])
    bad = tmp_path / "bad.parquet"
    table.with_columns(pl.col("token_ids").list.eval(pl.element().cast(pl.String) + "x")).write_parquet(
        bad, metadata=meta)
    target = tmp_path / "again.json"
    for args in (("eval", "--prompts", str(bad), "--device", "cpu"), ("export-prompts", str(bad), "-o", str(target))):
        line = one_error(*invoke(*args, "--home", str(base.root))[::2])
        assert f"{bad}: row 1: field 'token_ids.0': input should be a valid integer" in line and REEXPORT in line
        assert not target.exists()
    bad_user = tmp_path / "bad_user.parquet"
    table.with_columns(pl.col("user_idx").cast(pl.String)).write_parquet(bad_user, metadata=meta)
    line = one_error(*invoke("export-prompts", str(bad_user), "-o", str(target), "--home", str(base.root))[::2])
    assert f"{bad_user}: row 1: field 'user_idx': input should be a valid integer (found '3')" in line


def test_good_exports_still_import(base: Home, exports: dict[str, Path], tmp_path: Path) -> None:
    from paprec_cli.export import read_prompts

    back = {fmt: read_prompts(path) for fmt, path in exports.items()}
    assert back["csv"] == back["parquet"] and back["csv"]["personal"]["3"] == [_token(_prompts(base))]


def test_template_is_the_search_layouts() -> None:
    from paprec_cli.export_schema import TEMPLATE
    from paprec_cli.search.layout import TEMPLATE as SEARCH_TEMPLATE

    assert TEMPLATE == SEARCH_TEMPLATE


# -- 4. truncated binaries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["interactions", "items"])
def test_truncated_dataset_parquet(home: Home, table: str) -> None:
    path = home.dataset_dir("synthetic") / f"{table}.parquet"
    truncate(path)
    for args in (RECOMMEND, ("data", "info", "synthetic")):
        line = fails_cleanly(home, *args)
        assert f"{path}: not a readable Parquet file, truncated or damaged" in line, line
        assert "re-import dataset 'synthetic' with `paprec data import synthetic --indexing random" in line


@pytest.mark.parametrize("table", ["users", "extra_truth"])
def test_every_dataset_table_is_checked_when_the_dataset_loads(home: Home, table: str) -> None:
    from paprec_cli.data.store import load_dataset
    from paprec_cli.errors import PaprecError

    path = home.dataset_dir("synthetic") / f"{table}.parquet"
    truncate(path)
    with pytest.raises(PaprecError, match="not a readable Parquet file, truncated or damaged") as info:
        load_dataset(home, "synthetic")  # the footers are checked on load, before any work
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_table_damaged_after_its_footer_is_still_one_line(home: Home) -> None:
    """The footer check passes a file whose data pages are damaged; reading the table then still gives the
    one-line error naming the file (never a traceback)."""
    import polars as pl

    from paprec_cli.data.store import load_dataset
    from paprec_cli.errors import PaprecError

    path = home.dataset_dir("synthetic") / "users.parquet"
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(4, len(data) - footer):  # the data pages: between the magic and the footer
        data[i] = 0xFF
    path.write_bytes(bytes(data))
    pl.read_parquet_schema(path)  # the footer still reads
    dataset = load_dataset(home, "synthetic")
    with pytest.raises(PaprecError, match="not a readable Parquet file, truncated or damaged") as info:
        _ = dataset.users
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("table", ["interactions", "items", "users", "extra_truth"])
def test_data_list_shows_a_truncated_table_as_broken_and_lists_the_rest(home: Home, table: str) -> None:
    """#16 review: `data list` read only the manifest, so a truncated Parquet table showed the dataset as ok.
    Now each table's footer is read: the import is listed as broken (its counts kept), the others as ok,
    nothing is written; a command that loads it is one line naming the file and the re-import fix."""
    code, _, err = invoke("data", "import", "synthetic", "--name", "good", "-o", "users=20", "-o", "items=30",
                          "--home", str(home.root), "-q")
    assert code == 0, err
    path = home.dataset_dir("synthetic") / f"{table}.parquet"
    truncate(path)
    before = snapshot(home.root)
    code, out, err = invoke("data", "list", "--home", str(home.root), "--json")
    assert code == 0, err
    imported = {d["name"]: d for d in last_json(out)["imported"]}
    assert set(imported) == {"synthetic", "good"}
    broken = imported["synthetic"]["broken"]
    assert broken.startswith(f"{path}: not a readable Parquet file, truncated or damaged") and "\n" not in broken
    assert "re-import dataset 'synthetic' with `paprec data import synthetic --indexing random" in broken
    assert imported["synthetic"]["users"] == 40  # the manifest's counts are still shown
    assert "broken" not in imported["good"]
    assert "broken import 'synthetic'" in err
    code, out, err = invoke("data", "list", "--home", str(home.root))  # the table marks it too
    assert code == 0 and out.count("(broken)") == 1, out  # the one broken import of the two
    assert snapshot(home.root) == before
    for args in (("data", "info", "synthetic"), RECOMMEND, ("train", "--dataset", "synthetic", "--device", "cpu")):
        line = fails_cleanly(home, *args)
        assert line.startswith(f"Error: {path}: not a readable Parquet file") and "--force" in line, line


def test_data_list_table_missing_a_column_is_broken(home: Home) -> None:
    import polars as pl

    path = home.dataset_dir("synthetic") / "items.parquet"
    pl.read_parquet(path).drop("item").write_parquet(path)
    code, out, err = invoke("data", "list", "--home", str(home.root), "--json")
    assert code == 0, err
    broken = last_json(out)["imported"][0]["broken"]
    assert broken.startswith(f"{path}: missing column(s) item; re-import dataset 'synthetic'")


def test_reimport_with_force_repairs_a_broken_dataset(home: Home) -> None:
    path = home.dataset_dir("synthetic") / "interactions.parquet"
    truncate(path)
    manifest = json.loads((home.dataset_dir("synthetic") / "manifest.json").read_text())
    args = ["data", "import", "synthetic", "--home", str(home.root), "-q",
            *[x for k, v in manifest["options"].items() for x in ("-o", f"{k}={v}")]]
    code, _, err = invoke(*args, "--force")
    assert code == 0, err
    code, out, _ = invoke("data", "list", "--home", str(home.root), "--json")
    entry = last_json(out)["imported"][0]
    assert "broken" not in entry and entry["users"] == 40
    assert json.loads((home.dataset_dir("synthetic") / "manifest.json").read_text())["fingerprint"] == \
        manifest["fingerprint"]  # the same data back: the model and run made on it match again


def test_dataset_parquet_missing_a_column(home: Home) -> None:
    import polars as pl

    path = home.dataset_dir("synthetic") / "interactions.parquet"
    pl.read_parquet(path).drop("item_idx").write_parquet(path)
    line = fails_cleanly(home, *RECOMMEND)
    assert f"{path}: missing column(s) item_idx; re-import dataset 'synthetic'" in line, line


@pytest.mark.parametrize("recorded_sha", [True, False])
def test_truncated_model_weights(home: Home, recorded_sha: bool) -> None:
    weights = home.model_dir(MODEL) / "model.safetensors"
    truncate(weights)
    if not recorded_sha:
        edit_json(home.model_dir(MODEL) / "config.json",
                  lambda d: {k: v for k, v in d.items() if k != "weights_sha256"})
    line = fails_cleanly(home, *RECOMMEND)
    problem = "checksum differs from config.json's weights_sha256 (file truncated" if recorded_sha \
        else "not a readable safetensors file"
    assert f"{weights}: {problem}" in line and RETRAIN in line, line


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home with one 1-epoch training `t1` (its resume state under models/.train-state/t1)."""
    home = make_home(tmp_path_factory.mktemp("trained"))
    code, _, err = invoke(*TRAIN, "--home", str(home.root))
    assert code == 0, err
    return home


@pytest.mark.parametrize("file", ["last.safetensors", "optimizer.pt"])
def test_truncated_training_checkpoint_on_resume(trained: Home, tmp_path: Path, file: str) -> None:
    shutil.copytree(trained.root, tmp_path / "home", ignore=shutil.ignore_patterns("*.lock"))
    home = Home.resolve(tmp_path / "home")
    path = home.models / ".train-state" / "t1" / file
    truncate(path)
    line = fails_cleanly(home, "train", "--resume", "t1", "--dataset", "synthetic", "--epochs", "2", "--device",
                         "cpu", "-q")
    assert f"{path}: not readable, truncated or damaged" in line, line
    assert "this training cannot be resumed; train it afresh under a new name with `paprec train" in line


def test_describe_error_names_the_field() -> None:
    from pydantic import PositiveInt

    from paprec_cli.errors import PaprecError
    from paprec_cli.schema import Record, check

    class Inner(Record):
        n: PositiveInt

    class Outer(Record):
        inner: Inner
        names: dict[str, int] = {}

    assert check(Outer, {"inner": {"n": 1}, "extra": "kept"}, "f.json", "fix").model_extra == {"extra": "kept"}
    cases = [({}, "f.json: field 'inner' is missing; fix"),
             ({"inner": {"n": True}}, "f.json: field 'inner.n': input should be a valid integer (found True); fix"),
             ({"inner": {"n": 1}, "names": {"a": "1"}}, "field 'names.a': input should be a valid integer")]
    for data, expected in cases:
        with pytest.raises(PaprecError) as info:
            check(Outer, data, "f.json", "fix")
        assert expected in str(info.value)
    long = {"inner": {"n": "x" * 500}}
    with pytest.raises(PaprecError) as info:
        check(Outer, long, "f.json", "fix")
    assert len(str(info.value)) < 200 and "..." in str(info.value)


def test_prompt_document_deep_copy_is_unchanged(base: Home) -> None:
    """The run's own prompts are valid as written by the search (the checks accept what paprec writes)."""
    from paprec_cli.export import read_prompts

    doc = read_prompts(base.runs / "r1" / "prompts.json")
    assert doc == copy.deepcopy(_prompts(base))


def test_eval_of_a_run_with_a_damaged_manifest_is_one_line(home: Home) -> None:
    path = home.runs / "r1" / "manifest.json"
    path.write_text("[]", encoding="utf-8")
    line = fails_cleanly(home, "eval", "r1", "--device", "cpu")
    assert f"{path}: expected a JSON object, found list" in line, line
