"""The run config: every key of ``[tool.flwr.app.config]``, typed and validated in one place.

Flower hands both apps a flat ``dict[str, int | float | bool | str]`` (``context.run_config``).
:class:`RunConfig` turns it into a frozen dataclass. Invalid values raise :class:`ConfigError`
naming the key, the bad value and what is valid, so that ``fedssl run`` can refuse a run
before any SuperLink or Ray process starts.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "PYPROJECT",
    "ConfigError",
    "RunConfig",
    "load_defaults",
    "parse_overrides",
    "paths_elsewhere",
]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

FAULT_KINDS = ("raise", "nan", "shape", "keys")
WANDB_MODES = ("auto", "offline", "online", "disabled")
AUGMENTS = ("none", "crop", "randaugment")


class ConfigError(ValueError):
    """A run-config value is invalid; the message names the key, the value and what is valid."""


_CHECK_LOCAL_PATHS: ContextVar[bool] = ContextVar("fedssl_check_local_paths", default=True)


@contextmanager
def paths_elsewhere() -> Iterator[None]:
    """Validate configs whose paths (data-dir, resume-from, repopt-scales) name files on other
    machines: in deployment they are read by the SuperLink and the SuperNodes, not by the
    machine that submits the run. Every other check still runs."""
    token = _CHECK_LOCAL_PATHS.set(False)
    try:
        yield
    finally:
        _CHECK_LOCAL_PATHS.reset(token)


def _key(default: Any, doc: str, **rules: Any) -> Any:
    return field(default=default, metadata={"doc": doc, **rules})


@dataclass(frozen=True)
class RunConfig:
    """Typed view of the run config. Field ``foo_bar`` is the TOML key ``foo-bar``."""

    # --- the run
    task: str = _key("image-ssl", "client task (what clients train)", choices="tasks")
    num_server_rounds: int = _key(8, "federated rounds", min=1)
    seed: int = _key(0, "one seed for partitioning, sampling, init and augmentation", min=0)
    output_dir: str = _key("", "absolute run directory; empty: ~/fedssl-runs/<run-name>")
    run_name: str = _key("", "run name (W&B name too); empty: <dataset>-<ssl-method>-<time>")
    resume_from: str = _key("", "run directory whose checkpoint the run continues from")
    # --- server
    strategy: str = _key("fedavg", "Flower aggregation strategy", choices="strategies")
    fraction_train: float = _key(1.0, "fraction of nodes sampled per round", gt=0.0, max=1.0)
    fraction_evaluate: float = _key(0.0, "fraction of nodes for federated eval", min=0.0, max=1.0)
    min_train_nodes: int = _key(2, "fewest replies a round needs to update the model", min=1)
    min_available_nodes: int = _key(2, "nodes to wait for before a round starts", min=1)
    round_timeout: float = _key(3600.0, "seconds to wait for the replies of a round", gt=0.0)
    server_optimizer: str = _key(
        "none", "server optimiser after ldawa/fedvssl's combination", choices="optimizers"
    )
    server_lr: float = _key(1.0, "FedAvgM server learning rate", gt=0.0)
    server_momentum: float = _key(0.9, "FedAvgM server momentum", min=0.0, lt=1.0)
    proximal_mu: float = _key(0.01, "FedProx proximal term weight", min=0.0)
    fedopt_eta: float = _key(1e-2, "FedAdam/FedYogi/FedAdagrad server learning rate", gt=0.0)
    fedopt_tau: float = _key(1e-3, "FedAdam/FedYogi/FedAdagrad adaptivity tau", gt=0.0)
    fedopt_beta1: float = _key(0.9, "FedAdam/FedYogi beta1", min=0.0, lt=1.0)
    fedopt_beta2: float = _key(0.99, "FedAdam/FedYogi beta2", min=0.0, lt=1.0)
    trimmed_beta: float = _key(0.2, "FedTrimmedAvg fraction cut at each end", min=0.0, lt=0.5)
    krum_num_malicious: int = _key(0, "Krum: number of malicious nodes tolerated", min=0)
    ldawa_warmup_rounds: int = _key(2, "L-DAWA: rounds of plain FedAvg first", min=0)
    ldawa_weighting: str = _key(
        "uniform", "L-DAWA client weights: uniform (authors) or num-examples",
        choices="ldawa-weightings",
    )
    fedvssl_alpha: float = _key(0.9, "FedVSSL: share of the loss-based aggregate", min=0.0, max=1.0)
    fedvssl_beta: float = _key(1.0, "FedVSSL: smoothing with the last global", min=0.0, max=1.0)
    # --- model and SSL method
    model: str = _key("small-cnn", "backbone (image-ssl, audio-ssl) or network "
                      "(image-classification)", choices="models")
    ssl_method: str = _key("simclr", "self-supervised method (lightly), or clip-order (audio)",
                           choices="ssl")
    projection_dim: int = _key(128, "projection head output size", min=1)
    hidden_dim: int = _key(512, "projection head hidden size", min=1)
    temperature: float = _key(0.1, "SimCLR NT-Xent temperature", gt=0.0)
    byol_momentum: float = _key(0.99, "BYOL target EMA base momentum", min=0.0, max=1.0)
    clip_order_segments: int = _key(3, "clip-order: segments per clip (n! orders)", min=2, max=5)
    # Augmentation strengths for every method's two views (lightly's CIFAR settings are
    # crop-min-scale 0.08, color-jitter 0.5, hflip-prob 0.5; the defaults suit small digits).
    crop_min_scale: float = _key(0.5, "smallest random-resized-crop area", gt=0.0, max=1.0)
    color_jitter: float = _key(0.8, "colour jitter strength", min=0.0)
    hflip_prob: float = _key(0.0, "horizontal flip probability", min=0.0, max=1.0)
    # Audio views (task=audio-ssl): waveform shift, gain and mixing, then SpecAugment.
    audio_max_shift: float = _key(0.2, "audio: largest circular time shift (clip fraction)",
                                  min=0.0, lt=1.0)
    audio_gain_db: float = _key(6.0, "audio: random gain range +-dB", min=0.0)
    audio_mix_prob: float = _key(0.5, "audio: probability of mixing in another clip", min=0.0,
                                 max=1.0)
    spec_time_width: int = _key(10, "SpecAugment: widest time mask in frames (0: off)", min=0)
    spec_freq_width: int = _key(16, "SpecAugment: widest mel mask in bands (0: off)", min=0)
    # --- supervised classification (task=image-classification) and FedRepOpt
    repopt_mode: str = _key(
        "target", "RepOpt model mode: rep (Tr), csla, hs, target (plain)", choices="repopt-modes"
    )
    repopt_scales: str = _key(
        "", "hyper-search scales file (fedssl hyper-search): target init and FedRepOpt masks"
    )
    label_smoothing: float = _key(0.1, "cross-entropy label smoothing", min=0.0, lt=1.0)
    augment: str = _key("crop", "supervised augmentation", choices=AUGMENTS)
    # --- data
    dataset: str = _key("embedded-digits", "dataset (image, or audio for audio-ssl)",
                        choices="datasets")
    data_dir: str = _key("", "dataset directory (real datasets)")
    hf_dataset: str = _key("", "Hugging Face dataset id (dataset=hf)")
    image_size: int = _key(32, "image side in pixels", min=8, max=512)
    partitioner: str = _key("dirichlet", "how data is split over clients", choices="partitioners")
    dirichlet_alpha: float = _key(
        1.0, "Dirichlet concentration (dirichlet, paper-dirichlet)", gt=0.0
    )
    classes_per_client: int = _key(2, "classes per client (shard partitioner)", min=1)
    # --- local training
    local_epochs: int = _key(1, "local epochs per round", min=1)
    batch_size: int = _key(128, "local batch size", min=2)
    lr: float = _key(0.1, "local SGD learning rate", gt=0.0)
    momentum: float = _key(0.9, "local SGD momentum", min=0.0, lt=1.0)
    weight_decay: float = _key(1e-4, "local SGD weight decay", min=0.0)
    max_local_steps: int = _key(0, "cap on local steps per round (0: no cap)", min=0)
    partial_prefix: str = _key(
        "", "load only global arrays with this key prefix, keep the rest local (FedVSSL)"
    )
    # --- central evaluation
    eval_every: int = _key(4, "kNN eval every k rounds (0: only at the end)", min=0)
    knn_k: int = _key(20, "neighbours in the kNN monitor", min=1)
    eval_max_samples: int = _key(0, "cap on eval train/test samples (0: all)", min=0)
    linear_probe: bool = _key(True, "linear probe (trained and random-init) at the end")
    keep_round_models: bool = _key(True, "keep every round's global model (fedssl select-best)")
    # --- tracking
    # auto: online when the ServerApp's environment has a W&B API key (WANDB_API_KEY or
    # `wandb login`), else offline (see fedssl.tracking.wandb_sink.resolve_wandb_mode).
    wandb_mode: str = _key("auto", "W&B mode: auto (online with an API key, else offline), "
                           "offline, online, disabled", choices=WANDB_MODES)
    wandb_project: str = _key("fedssl", "W&B project")
    wandb_group: str = _key("", "W&B group")
    wandb_tags: str = _key("", "comma-separated W&B tags")
    # --- fault injection
    fault_partition: int = _key(-1, "partition that misbehaves (-1: none)", min=-1)
    fault_kind: str = _key("raise", "how it misbehaves", choices=FAULT_KINDS)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        if self.min_available_nodes < self.min_train_nodes:
            raise ConfigError(
                f"min-available-nodes={self.min_available_nodes} is below "
                f"min-train-nodes={self.min_train_nodes}; set it to at least that"
            )
        from fedssl.strategies.registry import ACCEPTS_SERVER_OPTIMIZER

        if self.server_optimizer != "none" and self.strategy not in ACCEPTS_SERVER_OPTIMIZER:
            raise ConfigError(
                f"server-optimizer={self.server_optimizer!r} applies to the strategies "
                f"{', '.join(ACCEPTS_SERVER_OPTIMIZER)}, not strategy={self.strategy!r}; "
                "Flower's optimisers are strategies of their own (e.g. strategy=fedyogi)"
            )
        self._check_task_and_model()
        self._check_modality()
        local = _CHECK_LOCAL_PATHS.get()
        if local and self.dataset in ("cifar10", "cifar100", "tiny-imagenet", "imagefolder", "hf"):
            from fedssl.datasets import DatasetNotFoundError, check_dataset

            try:
                check_dataset(self.dataset, data_dir=self.data_dir, hf_dataset=self.hf_dataset)
            except DatasetNotFoundError as err:
                raise ConfigError(f"data-dir={self.data_dir!r}: {err}") from None
            except ValueError as err:
                raise ConfigError(f"dataset={self.dataset!r}: {err}") from None
        if local and self.resume_from and not (Path(self.resume_from) / "checkpoint.pt").is_file():
            raise ConfigError(
                f"resume-from={self.resume_from!r}: no checkpoint.pt there; "
                "give the run directory of an earlier run"
            )

    def _check_modality(self) -> None:
        """Audio tasks need audio data and an audio backbone, image tasks image ones."""
        from fedssl.clients.audio_ssl import PREDICTIVE_METHODS
        from fedssl.datasets import DATASETS
        from fedssl.datasets.audio_loader import AUDIO_DATASETS, check_audio_dataset
        from fedssl.models import BACKBONES
        from fedssl.models.audio_backbones import AUDIO_BACKBONES

        audio = self.task == "audio-ssl"
        wrong = []
        if audio and self.dataset not in AUDIO_DATASETS:
            wrong.append(f"dataset={self.dataset!r} (needs one of {', '.join(AUDIO_DATASETS)})")
        if not audio and self.dataset not in DATASETS:
            wrong.append(f"dataset={self.dataset!r} is audio (needs task=audio-ssl)")
        if audio and self.model not in AUDIO_BACKBONES:
            wrong.append(f"model={self.model!r} (needs one of {', '.join(AUDIO_BACKBONES)})")
        if not audio and self.model in AUDIO_BACKBONES and self.model not in BACKBONES:
            wrong.append(f"model={self.model!r} is an audio backbone (needs task=audio-ssl)")
        if not audio and self.ssl_method in PREDICTIVE_METHODS:
            wrong.append(f"ssl-method={self.ssl_method!r} is audio clip-order prediction "
                         "(needs task=audio-ssl)")
        if wrong:
            raise ConfigError(f"task={self.task!r} does not fit: " + "; ".join(wrong))
        if self.partitioner == "group" and not audio:
            raise ConfigError("partitioner='group' splits by speaker/recording, which only the "
                              "audio datasets have; use iid, dirichlet, shard or paper-dirichlet")
        if audio and self.dataset != "spoken-digits" and _CHECK_LOCAL_PATHS.get():
            from fedssl.datasets import DatasetNotFoundError

            try:
                check_audio_dataset(self.dataset, data_dir=self.data_dir)
            except DatasetNotFoundError as err:
                raise ConfigError(f"data-dir={self.data_dir!r}: {err}") from None

    def _check_task_and_model(self) -> None:
        from fedssl.models.repopt import REPOPT_MODELS

        repopt = self.model in REPOPT_MODELS
        if self.task == "image-ssl" and repopt:
            raise ConfigError(
                f"model={self.model!r} is a RepOpt classifier; use task=image-classification, "
                "or a backbone for task=image-ssl"
            )
        if self.strategy == "fedrepopt":
            wrong = []
            if self.task != "image-classification":
                wrong.append(f"task={self.task!r} (needs image-classification)")
            if not repopt:
                wrong.append(f"model={self.model!r} (needs one of {', '.join(REPOPT_MODELS)})")
            if self.repopt_mode != "target":
                wrong.append(f"repopt-mode={self.repopt_mode!r} (needs target)")
            if not self.repopt_scales:
                wrong.append("repopt-scales='' (needs the file `fedssl hyper-search` writes)")
            if wrong:
                raise ConfigError("strategy=fedrepopt trains a plain RepOpt model with masked "
                                  "gradients; fix: " + "; ".join(wrong))
        if self.repopt_scales:
            if not (repopt and self.repopt_mode == "target"):
                raise ConfigError(
                    f"repopt-scales={self.repopt_scales!r} initialises a plain RepOpt model; it "
                    f"needs a RepOpt model with repopt-mode=target, got model={self.model!r}, "
                    f"repopt-mode={self.repopt_mode!r}"
                )
            if _CHECK_LOCAL_PATHS.get() and not Path(self.repopt_scales).is_file():
                raise ConfigError(
                    f"repopt-scales={self.repopt_scales!r}: no such file; write one with "
                    f"`fedssl hyper-search --model {self.model} --out FILE`"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> RunConfig:
        """Build from Flower's flat run config (kebab-case keys); unknown keys are refused."""
        by_key = {_toml_key(f.name): f for f in dataclasses.fields(cls)}
        unknown = sorted(set(run_config) - set(by_key))
        if unknown:
            raise ConfigError(f"unknown run-config key(s) {unknown}; valid keys: {sorted(by_key)}")
        kwargs = {by_key[k].name: _coerce(k, v, by_key[k]) for k, v in run_config.items()}
        return cls(**kwargs)

    def to_run_config(self) -> dict[str, Any]:
        """The flat kebab-case dict Flower expects (round-trips through from_run_config)."""
        return {_toml_key(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def default_run_name(self) -> str:
        """``<dataset>-<ssl-method or model>-<strategy>-<timestamp>``, used when run-name is
        empty (the SSL method names an image-ssl run, the network a classification run)."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        what = self.ssl_method if self.task in ("image-ssl", "audio-ssl") else self.model
        return f"{self.dataset}-{what}-{self.strategy}-{stamp}"

    @property
    def tags(self) -> list[str]:
        return [t.strip() for t in self.wandb_tags.split(",") if t.strip()]


def _toml_key(name: str) -> str:
    return name.replace("_", "-")


def _choices(kind: str | tuple[str, ...]) -> tuple[str, ...]:
    # Registries are imported lazily: they pull in torch and flwr.
    if isinstance(kind, tuple):
        return kind
    if kind == "strategies":
        from fedssl.strategies import STRATEGIES

        return tuple(STRATEGIES)
    if kind == "optimizers":
        from fedssl.strategies.registry import SERVER_OPTIMIZERS

        return tuple(SERVER_OPTIMIZERS)
    if kind == "ldawa-weightings":
        from fedssl.strategies.ldawa import LDAWA_WEIGHTINGS

        return LDAWA_WEIGHTINGS
    if kind == "models":
        from fedssl.models import BACKBONES
        from fedssl.models.audio_backbones import AUDIO_BACKBONES
        from fedssl.models.repopt import REPOPT_MODELS

        return tuple(dict.fromkeys((*BACKBONES, *REPOPT_MODELS, *AUDIO_BACKBONES)))
    if kind == "repopt-modes":
        from fedssl.models.repopt import REPOPT_MODES

        return REPOPT_MODES
    if kind == "ssl":
        from fedssl.clients.audio_ssl import PREDICTIVE_METHODS
        from fedssl.models import SSL_METHODS

        return (*SSL_METHODS, *PREDICTIVE_METHODS)
    if kind == "datasets":
        from fedssl.datasets import DATASETS
        from fedssl.datasets.audio_loader import AUDIO_DATASETS

        return (*DATASETS, *AUDIO_DATASETS)
    if kind == "partitioners":
        from fedssl.datasets import PARTITIONERS

        return tuple(PARTITIONERS)
    if kind == "tasks":
        from fedssl.clients import TASKS

        return tuple(TASKS)
    raise KeyError(kind)


def _coerce(key: str, value: Any, f: dataclasses.Field) -> Any:
    """Accept what TOML/Flower give (an int for a float key); refuse anything else."""
    expected = {"int": int, "float": float, "bool": bool, "str": str}[str(f.type)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (expected is not bool and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(
            f"{key}={value!r} has type {type(value).__name__}; expected {expected.__name__}"
        )
    return value


def _check_field(f: dataclasses.Field, value: Any) -> None:
    key, rules = _toml_key(f.name), f.metadata
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} is not a finite number")
    if "choices" in rules:
        valid = _choices(rules["choices"])
        if value not in valid:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(valid)}")
    bounds = [
        ("min", lambda v, b: v >= b, ">="),
        ("max", lambda v, b: v <= b, "<="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
    ]
    for rule, ok, symbol in bounds:
        if rule in rules and not ok(value, rules[rule]):
            raise ConfigError(f"{key}={value!r} is out of range; it must be {symbol} {rules[rule]}")


def load_defaults(pyproject: Path = PYPROJECT) -> dict[str, Any]:
    """The ``[tool.flwr.app.config]`` table of the project's pyproject.toml."""
    with open(pyproject, "rb") as fh:
        return dict(tomllib.load(fh)["tool"]["flwr"]["app"]["config"])


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are TOML (bare words are taken as strings)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = (s.strip() for s in item.split("=", 1))
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        # TOML reads the bare words nan and inf as floats; as overrides they are words.
        if isinstance(value, float) and not math.isfinite(value):
            value = raw
        out[key] = value
    return out
