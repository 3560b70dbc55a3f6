"""`paprec recommend` on the tiny synthetic model: personalized, shared fallback (said on stderr), manual,
the serving history (full sequence), and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke
from test_export_helpers import tiny_document, tiny_home, write_json

from paprec_cli import export
from paprec_cli.data.store import load_dataset
from paprec_cli.paths import Home
from paprec_cli.plugins import load_registry
from paprec_cli.serving import serving_example

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return tiny_home(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def prompts(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Users 1 and 2 have personalized tokens, nobody else; exported as Parquet to use the import path."""
    path = tmp_path_factory.mktemp("prompts") / "prompts.parquet"
    export.export_prompts(tiny_document(home), path)
    return path


def recommend_json(home: Home, *args: str) -> tuple[dict[str, Any], str]:
    code, stdout, stderr = invoke("recommend", *args, "--home", str(home.root), "--device", "cpu", "--json")
    assert code == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1]), stderr


def test_personalized_prompt(home: Home, prompts: Path) -> None:
    out, stderr = recommend_json(home, "--prompts", str(prompts), "--user", "1", "-k", "5")
    doc = export.read_prompts(prompts)
    assert out["prompt"]["mode"] == "personalized" and "shared prompt" not in stderr
    assert out["user"] == doc["users"]["1"] and out["user_idx"] == 1
    assert out["prompt_text"].endswith(doc["personal"]["1"][0]["text"])
    assert out["prompt_text"].startswith("user_1 :")
    ids, wids = out["prompt"]["input_ids"], out["prompt"]["whole_word_ids"]
    assert len(ids) == len(wids) > 5 and ids[-1] == 1 and wids[-1] == 0 and 0 not in wids[:-1]
    assert wids[:-1] == sorted(wids[:-1]) and out["prompt"]["inputs"] == "paprec"
    assert [row["rank"] for row in out["items"]] == [1, 2, 3, 4, 5]
    scores = [row["score"] for row in out["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(row["item"] and 1 <= row["item_idx"] <= 30 for row in out["items"])


def test_falls_back_to_shared_and_says_so(home: Home, prompts: Path) -> None:
    data = load_dataset(home, "synthetic")
    raw = data.user_raw_id(7)
    out, stderr = recommend_json(home, "--prompts", str(prompts), "--user", raw, "-k", "3")
    doc = export.read_prompts(prompts)
    assert out["prompt"]["mode"] == "shared" and out["user_idx"] == 7
    assert "no personalized tokens" in stderr and "shared prompt" in stderr
    assert out["prompt_text"].endswith(doc["shared"]["personal_default"][0]["text"])
    same, _ = recommend_json(home, "--prompts", str(prompts), "--user", "user_7", "-k", "3")
    assert same["items"] == out["items"]


def test_manual_prompt_without_prompts(home: Home) -> None:
    out, _ = recommend_json(home, "--dataset", "synthetic", "--user", "3", "-k", "4", "--exclude-seen")
    data = load_dataset(home, "synthetic")
    assert out["prompt"]["mode"] == "manual"
    assert out["prompt"]["text"] == out["prompt_text"]
    assert out["prompt_text"].startswith("Here is the purchase history list of user_3")
    seen = {int(i) for i in data.sequences[3]}
    assert len(out["items"]) == 4 and not seen & {row["item_idx"] for row in out["items"]}


def test_serving_history_is_the_full_sequence(home: Home) -> None:
    data = load_dataset(home, "synthetic")
    task = load_registry().task("sequential")
    example = serving_example(task, data, 5, seed=0)
    items = [w.index for w in example.values["history"] if w.kind == "item"]
    assert items == [int(i) for i in data.sequences[5][-task.max_history :]]


def test_refusals(home: Home, prompts: Path, tmp_path: Path) -> None:
    code, _, stderr = invoke("recommend", "--prompts", str(prompts), "--user", "nobody", "--home", str(home.root))
    assert code == 2 and "--user nobody" in stderr
    code, _, stderr = invoke("recommend", "--prompts", str(prompts), "--user", "1", "--task", "rating",
                             "--home", str(home.root))  # fmt: skip
    assert code == 2 and "are for task 'sequential'" in stderr
    code, _, stderr = invoke("recommend", "--user", "1", "--home", str(home.root))
    assert code == 2 and "--dataset is required" in stderr
    code, _, stderr = invoke(
        "recommend", "--prompts", str(tmp_path / "gone.csv"), "--user", "1", "--home", str(home.root)
    )
    assert code == 2 and "no such prompts file" in stderr
    doc = tiny_document(home)
    doc["dataset_fingerprint"] = "0" * 16
    bad = write_json(tmp_path / "bad.json", doc)
    code, _, stderr = invoke("recommend", "--prompts", str(bad), "--user", "1", "--home", str(home.root))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "dataset in use" in stderr


# -- many users in one call ------------------------------------------------------------------------------
def recommend_lines(home: Home, *args: str) -> tuple[list[dict[str, Any]], str]:
    code, stdout, stderr = invoke("recommend", *args, "--home", str(home.root), "--device", "cpu")
    assert code == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()], stderr


def test_users_file_answers_each_user_in_order_like_user(home: Home, prompts: Path, tmp_path: Path) -> None:
    """One JSON line per listed user (repeats and blank lines as written); batch size 1 gives `--user`'s answer."""
    raw = load_dataset(home, "synthetic").user_raw_id(7)
    users = tmp_path / "users.txt"
    users.write_text(f"user_3\n\n {raw} \n1\nuser_3\n", encoding="utf-8")
    answers, stderr = recommend_lines(home, "--prompts", str(prompts), "--users-file", str(users), "-k", "3",
                                      "--batch-size", "1")  # fmt: skip
    assert [a["user_idx"] for a in answers] == [3, 7, 1, 3]
    assert [a["prompt"]["mode"] for a in answers] == ["shared", "shared", "personalized", "shared"]
    assert "3 of 4 users have no personalized tokens" in stderr
    for answer, user in zip(answers, ("3", raw, "1"), strict=False):
        alone, _ = recommend_json(home, "--prompts", str(prompts), "--user", user, "-k", "3")
        assert answer == alone
    batched, _ = recommend_lines(home, "--prompts", str(prompts), "--users-file", str(users), "-k", "3")
    assert [[row["item_idx"] for row in a["items"]] for a in batched] == [
        [row["item_idx"] for row in a["items"]] for a in answers
    ]


def test_all_users_to_output_file(home: Home, tmp_path: Path) -> None:
    output = tmp_path / "deep" / "recs.jsonl"
    code, stdout, stderr = invoke("recommend", "--dataset", "synthetic", "--all-users", "-k", "2", "--exclude-seen",
                                  "-o", str(output), "--json", "--home", str(home.root), "--device", "cpu")  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout) == {"output": str(output), "users": 40, "prompts": {"manual": 40}}
    answers = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    data = load_dataset(home, "synthetic")
    assert [a["user_idx"] for a in answers] == list(range(1, 41))
    for answer in answers:
        seen = {int(i) for i in data.sequences[answer["user_idx"]]}
        assert len(answer["items"]) == 2 and not seen & {row["item_idx"] for row in answer["items"]}
    assert sorted(p.name for p in output.parent.iterdir()) == ["recs.jsonl"], "no temporary file left"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no such file"),
        (b"", "no users in it"),
        (b"\n  \n", "no users in it"),
        (b"user_1\n2\nnobody\n", "users.txt:3: unknown user 'nobody' in dataset 'synthetic'"),
        (b"user_1\nuser_41\n", "users.txt:2: unknown user 'user_41'"),
        (b"1\n\xe9\n", "users.txt:2: byte 0xe9 is not valid utf-8"),
    ],
    ids=["missing", "empty", "blank", "unknown-line-3", "out-of-range", "not-utf8"],
)
def test_users_file_errors_exit_2_one_line(home: Home, prompts: Path, tmp_path: Path, content: bytes | None,
                                           needle: str) -> None:  # fmt: skip
    path = tmp_path / "users.txt"
    if content is not None:
        path.write_bytes(content)
    code, stdout, stderr = invoke("recommend", "--prompts", str(prompts), "--users-file", str(path),
                                  "--home", str(home.root), "--device", "cpu")  # fmt: skip
    lines = stderr.strip().splitlines()
    assert code == 2 and stdout == "" and len(lines) == 1, stderr
    assert needle in lines[0] and str(path) in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "exactly one of --user U, --users-file FILE or --all-users"),
        (["--user", "1", "--all-users"], "exactly one of"),
        (["--all-users", "--batch-size", "0"], "--batch-size must be"),
        (["--all-users", "--output", "."], "is a folder"),
        (["--users-file", "."], "is a folder"),
    ],
)
def test_request_refusals(home: Home, prompts: Path, args: list[str], needle: str) -> None:
    code, _, stderr = invoke("recommend", "--prompts", str(prompts), *args, "--home", str(home.root))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and needle in stderr, stderr
