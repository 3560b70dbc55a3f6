"""The JSON files of a paprec model folder, each with its one typed schema and its one reader.

- `config.json`: `ModelConfig` (with `Dims`), read by `read_config` for `load_model` and the registry
  (`models list/info`, the default model);
- `codec.json`: `CodecRecord`, read by `read_codec` for `PromptCodec.load` (and `models list`);
- `training.json`: `TrainingRecord`, read by `read_training` for the registry (`models list/info`).

Every reader raises a one-line `PaprecError` naming the file, the field and the fix (`paprec_cli.schema`);
`read_codec` returns the typed record; `read_config` and `read_training` return the checked JSON object as
read (extra keys kept: `config.json` travels on as `ModelBundle.config` and is written back on save).
No torch import here: `paprec models list` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from paprec_cli.errors import PaprecError
from paprec_cli.jsontypes import JSONObject
from paprec_cli.paths import read_json_object
from paprec_cli.schema import Record, RecordT, check

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
CODEC_FILE = "codec.json"
TRAINING_FILE = "training.json"
#: `config.json`'s `format` for a paprec model (the other accepted config is a Hugging Face T5 folder's).
PAPREC_FORMAT = "paprec-model"
#: The activations of `feed_forward_proj` ("relu", "gated-gelu", ...): names in transformers' `ACT2FN`
#: (a test checks that each is there; listing models must not import transformers).
ACTIVATIONS = frozenset({
    "gelu", "gelu_10", "gelu_accurate", "gelu_fast", "gelu_new", "gelu_python", "gelu_pytorch_tanh", "linear",
    "mish", "quick_gelu", "relu", "relu2", "relu6", "sigmoid", "silu", "swish", "tanh",
})  # fmt: skip

#: A metric value as recorded (NaN is written as null by some writers).
Metric = float | None

#: The weights key of a learned seen bias (`RecLM.add_seen_bias`; config.json `seen_bias: true`).
SEEN_BIAS_KEY = "seen_bias"


def seen_bias_value(tensor: torch.Tensor) -> float | None:
    """The learned seen bias a weights tensor holds: one finite number, else None (damaged)."""
    if tuple(tensor.shape) != (1,) or not tensor.dtype.is_floating_point or not bool(tensor.isfinite().all()):
        return None
    return float(tensor.reshape(-1)[0])


def check_id_scheme(folder: Path, recorded: object, codec_scheme: str) -> None:
    """`config.json`'s `id_scheme` (`recorded`) must be the one `codec.json` holds; else a one-line `PaprecError`
    naming the file and the fix (used when a model loads and by `paprec models list`)."""
    if recorded != codec_scheme:
        raise PaprecError(f"{folder / CONFIG_FILE}: records id_scheme {recorded!r}, but codec.json has "
                          f"{codec_scheme} ids (edited or damaged); {model_fix(folder)}")


def check_seen_bias(folder: Path, recorded: bool, tensor: torch.Tensor | None) -> None:
    """A model's `config.json` (`recorded`: `seen_bias` true) and the `seen_bias` tensor its weights hold (None:
    none) must agree, and a held bias must be one finite number; else a one-line `PaprecError` naming the file
    and the fix. Used when a model loads and by `paprec models list` (which reads only that tensor)."""
    if recorded != (tensor is not None):
        said = "seen_bias true" if recorded else "no seen_bias"
        held = "a seen bias" if tensor is not None else "no seen bias"
        raise PaprecError(f"{folder / CONFIG_FILE}: records {said}, but model.safetensors holds {held} (one of the "
                          f"two was edited or damaged); {model_fix(folder)}")
    if tensor is not None and seen_bias_value(tensor) is None:
        raise PaprecError(f"{folder / 'model.safetensors'}: seen_bias is not one finite number (shape "
                          f"{tuple(tensor.shape)}, {str(tensor.dtype).removeprefix('torch.')}; damaged); "
                          f"{model_fix(folder)}")


def model_fix(folder: Path) -> str:
    """The fix for a damaged model file: restore it, or train the model again under the same name with the
    exact command its `training.json` (else `config.json`) records (`training.retrain`); when neither records
    enough, the command's shape with what to fill in."""
    from paprec_cli.training.retrain import retrain_command

    command = retrain_command(Path(folder))
    if command is None:
        return (f"restore the file, or retrain the model (`paprec train --dataset DATASET --size SIZE --name "
                f"{folder.name} --force` with the dataset, size and options it was trained with)")
    return f"restore the file, or retrain the model (`{command}`)"


def config_digest(config: JSONObject) -> str:
    """sha256 (hex) of a model's `config.json` content without its own `config_sha256`: canonical JSON
    (sorted keys, no spaces), so re-indenting the file does not change it."""
    import hashlib
    import json

    content = {k: v for k, v in config.items() if k != "config_sha256"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_config_digest(folder: Path, config: JSONObject) -> None:
    """Refuse a `config.json` whose content no longer matches the `config_sha256` it was saved with.

    Fields such as `negatives`, `input_history` or `dims.relative_attention_max_distance` pass every schema
    check when edited, yet change the prompts and the evaluation protocol of the model without a word; a
    model saved before paprec recorded the digest (no `config_sha256`) is not checked."""
    recorded = config.get("config_sha256")
    if recorded is None:
        return
    if recorded != config_digest(config):
        raise PaprecError(f"{Path(folder) / CONFIG_FILE}: content differs from its config_sha256 (config.json edited "
                          f"or damaged after the model was saved); {model_fix(Path(folder))}")


class Dims(Record):
    """T5 sizes of a paprec model (`config.json` `dims`); unknown keys are refused (T5 would ignore a typo)."""

    model_config = Record.model_config | {"extra": "forbid"}

    d_model: PositiveInt
    num_layers: PositiveInt
    num_decoder_layers: PositiveInt
    num_heads: PositiveInt
    d_kv: PositiveInt
    d_ff: PositiveInt
    dropout_rate: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    feed_forward_proj: str = "relu"
    relative_attention_num_buckets: PositiveInt = 32
    relative_attention_max_distance: PositiveInt = 128

    @field_validator("feed_forward_proj")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        parts = value.split("-")
        gated = len(parts) == 2 and parts[0] == "gated"
        if not (len(parts) == 1 or gated) or parts[-1] not in ACTIVATIONS:
            raise ValueError(f"expected an activation or 'gated-' + one ({', '.join(sorted(ACTIVATIONS))})")
        return value


class ModelDataset(Record):
    """The dataset a model was made for (`config.json` `dataset`)."""

    name: str | None = None
    fingerprint: str | None = None
    n_users: NonNegativeInt | None = None
    n_items: NonNegativeInt | None = None


class ModelConfig(Record):
    """`config.json`: a paprec model's sizes, vocabulary, dataset and provenance (a Hugging Face T5 folder's
    config passes too; its own loader checks it). A paprec model must record `dims` and `vocab_size`."""

    format: str | None = None
    format_version: NonNegativeInt | None = None
    size: str | None = None
    dims: Dims | None = None
    vocab_size: PositiveInt | None = None
    id_scheme: Literal["atomic", "subword"] | None = None
    dataset: ModelDataset | None = None
    weights_sha256: str | None = None
    #: `config_digest` of this file at save time (`check_config_digest`).
    config_sha256: str | None = None
    tokenizer_sha256: str | None = None
    seed: NonNegativeInt | None = None
    split_seed: NonNegativeInt | None = None
    negatives: PositiveInt | None = None
    tasks: list[str] | None = None
    #: "untied": the item tokens have output rows of their own (`item_head` in the weights).
    item_head: Literal["tied", "untied"] | None = None
    #: True: the model has a learned seen bias (`seen_bias` in the weights; `RecLM.add_seen_bias`).
    seen_bias: bool | None = None

    @model_validator(mode="after")
    def _paprec_model_has_sizes(self) -> ModelConfig:
        if self.format == PAPREC_FORMAT:
            for key in ("dims", "vocab_size"):
                if getattr(self, key) is None:
                    raise ValueError(f"a paprec model's config needs '{key}'")
        return self


class CodecDataset(Record):
    name: str = ""
    fingerprint: str = ""


class CodecRecord(Record):
    """`codec.json`: how users, items and words map to token ids."""

    format: NonNegativeInt | None = None
    id_scheme: Literal["atomic", "subword"]
    n_users: PositiveInt
    n_items: PositiveInt
    text_vocab_size: PositiveInt
    vocab_size: PositiveInt
    tokenizer: str = "trained"
    tokenizer_sha256: str | None = None
    rating_readout: Literal["expected", "decoded"] = "expected"
    dataset: CodecDataset = CodecDataset()
    word_tokens: list[NonNegativeInt] | None = None


class TrainingDataset(Record):
    name: str | None = None
    fingerprint: str | None = None
    indexing: str | None = None
    users: NonNegativeInt | None = None
    items: NonNegativeInt | None = None


class TrainingRecord(Record):
    """`training.json`: what `paprec train` did and measured (every field optional: older and imported models
    record less)."""

    created: str | None = None
    name: str | None = None
    dataset: TrainingDataset | None = None
    tasks: list[str] | None = None
    size: str | None = None
    ids: str | None = None
    epochs: NonNegativeInt | None = None
    best_epoch: NonNegativeInt | None = None
    seconds: Annotated[float, Field(ge=0.0)] | None = None
    stopped: str | None = None
    validation: dict[str, dict[str, Metric]] | None = None
    test: dict[str, dict[str, Metric]] | None = None
    baselines: dict[str, dict[str, dict[str, Metric]]] | None = None
    history: list[dict[str, Any]] | None = None


def _read(schema: type[RecordT], path: Path, fix: str) -> tuple[RecordT, JSONObject]:
    """(the checked record, the JSON object as read) of `path`."""
    if not path.is_file():
        raise PaprecError(f"{path}: missing; {fix}")
    data = read_json_object(path, fix)
    return check(schema, data, path, fix), data


def read_config(folder: Path) -> JSONObject:
    """A model folder's `config.json`, checked against `ModelConfig` (a `PaprecError` naming the field)."""
    return _read(ModelConfig, Path(folder) / CONFIG_FILE, model_fix(Path(folder)))[1]


def read_codec(folder: Path, fix: str | None = None) -> CodecRecord:
    """A model folder's `codec.json` as a checked `CodecRecord`; `fix` (default: restore or retrain the
    model) ends the error of a damaged file (a training state's codec has its own)."""
    return _read(CodecRecord, Path(folder) / CODEC_FILE, fix or model_fix(Path(folder)))[0]


def read_training(folder: Path) -> JSONObject:
    """A model folder's `training.json`, checked against `TrainingRecord`; {} when the model has none
    (imported or initialised models)."""
    path = Path(folder) / TRAINING_FILE
    return _read(TrainingRecord, path, model_fix(Path(folder)))[1] if path.exists() else {}
