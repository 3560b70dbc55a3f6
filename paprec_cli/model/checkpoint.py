"""paprec model folders: save atomically, load any supported layout, refuse mismatches clearly.

A paprec model folder holds `model.safetensors` (tied T5 weights stored once), `config.json` (sizes,
id scheme, dataset name and fingerprint, paprec version, the weights' sha256), `tokenizer.json` and
`codec.json`; the trainer adds `training.json`. `load_model` also reads Hugging Face T5 folders and
original P5 `.pth` state dicts (see `loaders_hf`, `loaders_p5`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer

from paprec_cli import __version__
from paprec_cli.errors import PaprecError
from paprec_cli.model.backbone import build_model, t5_config
from paprec_cli.model.bundle import CONFIG_FORMAT, ModelBundle
from paprec_cli.model.codec import DatasetLike, IdScheme, PromptCodec
from paprec_cli.model.records import (
    SEEN_BIAS_KEY,
    check_config_digest,
    check_id_scheme,
    check_seen_bias,
    config_digest,
    model_fix,
    read_config,
)
from paprec_cli.model.weights import (
    TIED_KEYS,
    check_finite,
    load_state_strict,
    read_state_dict,
    save_safetensors_sorted,
)
from paprec_cli.paths import Home, atomic_path, library_write, sha256_file
from paprec_cli.registry import model_folders

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONValue

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
#: The state-dict key of an untied item head (`RecLM.item_head`; config.json `item_head: "untied"`).
ITEM_HEAD_KEY = "item_head"


def save_model(bundle: ModelBundle, folder: Path, *, extra_json: Mapping[str, JSONValue] | None = None) -> Path:
    """Write the bundle as a paprec model folder (atomically: all or nothing). `extra_json` adds
    files such as `{"training.json": {...}}` in the same atomic step. Returns the folder."""
    folder = Path(folder)
    state = {
        key: value.detach().to("cpu").contiguous()
        for key, value in bundle.model.state_dict().items()
        if key not in TIED_KEYS
    }
    with atomic_path(folder) as staged:
        staged.mkdir(parents=True)
        with library_write(folder / WEIGHTS):
            save_safetensors_sorted(state, staged / WEIGHTS, {"format": "pt", "producer": f"paprec {__version__}"})
        bundle.codec.save(staged)
        config = {**bundle.config, "format": CONFIG_FORMAT, "paprec_version": __version__}
        config["vocab_size"] = int(bundle.model.config.vocab_size)
        config["weights_sha256"] = sha256_file(staged / WEIGHTS)
        config = json.loads(json.dumps(config, default=str))  # as the file will read back
        config["config_sha256"] = config_digest(config)
        (staged / CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
        for name, content in (extra_json or {}).items():
            (staged / name).write_text(json.dumps(content, indent=2, default=str) + "\n", encoding="utf-8")
    bundle.config = config
    bundle.folder = folder
    return folder


def resolve_model_path(path_or_name: str | Path, home: Home | None) -> Path:
    """A path that exists, else a model name under `home.models`."""
    path = Path(path_or_name).expanduser()
    if path.exists():
        return path
    if home is not None and (home.models / str(path_or_name)).exists():
        return home.models / str(path_or_name)
    known = [p.name for p in model_folders(home)] if home is not None else []
    listing = ", ".join(known) or "none"
    where = f" (models in {home.models}: {listing})" if home is not None else ""
    raise PaprecError(f"model '{path_or_name}': no such file, folder or model name{where}")


def checkpoint_id_scheme(path_or_name: str | Path, home: Home | None) -> IdScheme | None:
    """The id scheme a checkpoint fixes, read without loading it: a paprec model folder's `config.json`
    `id_scheme`; "subword" for a P5 weight file (P5's ids are text); None where `--ids` decides (a Hugging
    Face T5 folder) or the files cannot tell (a missing or damaged checkpoint: loading it says why)."""
    try:
        path = resolve_model_path(path_or_name, home)
    except PaprecError:
        return None
    if path.is_file():
        return "subword" if path.suffix in WEIGHT_SUFFIXES else None
    try:
        info = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != CONFIG_FORMAT:
        return None
    scheme = info.get("id_scheme")
    return scheme if scheme in ("atomic", "subword") else None


def load_model(
    path_or_name: str | Path,
    home: Home | None = None,
    *,
    dataset: DatasetLike | None = None,
    tokenizer: Path | Tokenizer | None = None,
    id_scheme: IdScheme | None = None,
    num_heads: int | None = None,
) -> ModelBundle:
    """Load a paprec model folder, a Hugging Face T5 folder or a P5 `.pth` state dict.

    With `dataset`, the checkpoint must match it (users, items, fingerprint); HF and P5 checkpoints
    need `dataset` (the codec's id layout) and a T5 tokenizer (`tokenizer`, or `tokenizer.json` in
    the folder). `id_scheme` (HF only; default subword) and `num_heads` (P5 only, when the file
    does not tell) override what cannot be read from the files. Weights land on the CPU, in eval
    mode (call `.train()` to fine-tune).

    A model folder is locked for reading first (`locks.acquire`, shared, for the whole command): while a
    `paprec train` writes it (its epoch's best weights, then the test report), every reader (`search`,
    `eval`, `recommend`, `train --init`) is refused in one line naming the training process, so no result
    is ever computed on a half-trained model."""
    path = resolve_model_path(path_or_name, home)
    if path.is_dir():
        _lock_for_reading(path)
    bundle = _load_any(path, dataset, tokenizer, id_scheme, num_heads)
    bundle.model.eval()
    return bundle


def _load_any(
    path: Path,
    dataset: DatasetLike | None,
    tokenizer: Path | Tokenizer | None,
    id_scheme: IdScheme | None,
    num_heads: int | None,
) -> ModelBundle:
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise PaprecError(f"{path}: not a model folder or weight file ({', '.join(WEIGHT_SUFFIXES)})")
        from paprec_cli.model.loaders_p5 import load_p5

        return load_p5(path, dataset=dataset, tokenizer=tokenizer, num_heads=num_heads)
    config_path = path / CONFIG
    if not config_path.exists():
        raise PaprecError(f"{path}: no config.json; expected a paprec model folder or a Hugging Face T5 folder")
    info: dict[str, Any] = read_config(path)
    if info.get("format") == CONFIG_FORMAT:
        bundle = load_paprec_folder(path, info)
        if dataset is not None:
            check_dataset(bundle.codec, dataset, path)
        return bundle
    if info.get("model_type") == "t5" or "T5ForConditionalGeneration" in (info.get("architectures") or []):
        from paprec_cli.model.loaders_hf import load_hf_folder

        return load_hf_folder(path, info, dataset=dataset, tokenizer=tokenizer, id_scheme=id_scheme or "subword")
    raise PaprecError(f"{config_path}: neither a paprec model nor a T5 model (model_type {info.get('model_type')!r})")


def load_paprec_folder(folder: Path, info: dict[str, Any]) -> ModelBundle:
    """The model of a paprec folder whose `config.json` is `info` (as `records.read_config` checked it)."""
    codec = PromptCodec.load(folder)
    check_id_scheme(folder, info.get("id_scheme"), codec.id_scheme)
    weights = folder / WEIGHTS
    vocab = info.get("vocab_size")
    if vocab != codec.vocab_size:
        raise PaprecError(
            f"{folder / CONFIG}: vocabulary size {vocab} does not match the tokenizer and id scheme "
            f"(codec.json: {codec.vocab_size})"
        )
    expected_sha = info.get("weights_sha256")
    verified = bool(expected_sha) and weights.exists()
    if verified and sha256_file(weights) != expected_sha:
        raise PaprecError(f"{weights}: checksum differs from config.json's weights_sha256 (file truncated, modified "
                          f"or corrupt); {model_fix(folder)}")
    try:
        state = read_state_dict(weights)
    except PaprecError as err:
        raise PaprecError(f"{err}; {model_fix(folder)}") from None
    check_finite(weights, state, model_fix(folder))
    config = t5_config(info["dims"], codec.vocab_size, pad_id=codec.pad_id, eos_id=codec.eos_id)  # checked on read
    model = build_model(config, seed=0)
    untied = info.get("item_head") == "untied"
    if untied != (ITEM_HEAD_KEY in state):
        said = f"item_head '{info['item_head']}'" if info.get("item_head") else "no item_head (tied)"
        held = "an untied item head" if ITEM_HEAD_KEY in state else "no item head of its own (tied)"
        raise PaprecError(f"{folder / CONFIG}: records {said}, but {WEIGHTS} holds {held} (config.json edited or "
                          f"damaged); {model_fix(folder)}")
    if untied:
        if codec.id_scheme != "atomic":
            raise PaprecError(f"{folder / CONFIG}: item_head 'untied' needs atomic ids, the codec has "
                              f"{codec.id_scheme}")
        model.untie_items(codec.item_offset, codec.n_items)
    seen = info.get("seen_bias") is True
    check_seen_bias(folder, seen, state.get(SEEN_BIAS_KEY))
    if seen:
        if codec.id_scheme != "atomic":
            raise PaprecError(f"{folder / CONFIG}: seen_bias needs atomic ids, the codec has {codec.id_scheme}")
        model.add_seen_bias(codec.item_offset, codec.n_items)
    try:
        load_state_strict(model, state, weights)
    except PaprecError as err:
        if not verified:
            raise
        # the weights match the checksum config.json records: what config.json says about them is what is wrong
        detail = str(err).removeprefix(f"{weights}: ")
        raise PaprecError(f"{folder / CONFIG}: does not describe the weights in {WEIGHTS} ({detail}; they match "
                          f"config.json's weights_sha256, so config.json was edited or damaged); "
                          f"{model_fix(folder)}") from None
    check_config_digest(folder, info)  # last: the checks above name the field when they can
    return ModelBundle(model, codec, info, folder)


def check_dataset(codec: PromptCodec, dataset: DatasetLike, where: Path) -> None:
    """The checkpoint must have been made for this dataset."""
    if (codec.n_users, codec.n_items) != (dataset.n_users, dataset.n_items):
        raise PaprecError(
            f"{where}: made for {codec.n_users} users and {codec.n_items} items (dataset "
            f"'{codec.dataset_name}'), but dataset '{dataset.name}' has {dataset.n_users} users and "
            f"{dataset.n_items} items"
        )
    theirs = str(getattr(dataset, "fingerprint", ""))
    if codec.dataset_fingerprint and theirs and codec.dataset_fingerprint != theirs:
        raise PaprecError(
            f"{where}: trained on dataset '{codec.dataset_name}' (fingerprint {codec.dataset_fingerprint}), "
            f"not on '{dataset.name}' (fingerprint {theirs}); train one with `paprec train --dataset {dataset.name}`"
        )


def lock_model_for_reading(model: str, home: Home) -> None:
    """A shared lock on the model folder for the whole command: `paprec train` cannot rewrite the weights
    while a search reads them (and a search does not start on a model being trained)."""
    _lock_for_reading(resolve_model_path(model, home))


def _lock_for_reading(path: Path) -> None:
    from paprec_cli.locks import acquire, lock_path

    acquire(lock_path(path.resolve()), f"model '{path.name}'", shared=True)
