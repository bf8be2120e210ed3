"""The run config schema: every key of ``[tool.flwr.app.config]`` with its type, bounds and
default, in one place.

Flower hands both apps a flat ``dict[str, int | float | bool | str]`` (``context.run_config``).
:class:`RunConfig` turns it into a frozen dataclass and checks each value on its own (type,
bounds, fixed choices). It knows no registry: whether a name exists (a strategy, a model, a
dataset) and whether the parts fit together is asked of the parts themselves by
:func:`fedssl.compose.validate`. Invalid values raise :class:`ConfigError` naming the key, the
bad value and what is valid, so that ``fedssl run`` can refuse a run before any SuperLink or
Ray process starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
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
    "RESUME_MAY_CHANGE",
    "ConfigError",
    "RunConfig",
    "check_local_paths",
    "load_defaults",
    "parse_overrides",
    "paths_elsewhere",
    "resume_conflicts",
]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

FAULT_KINDS = ("raise", "nan", "shape", "keys")
WANDB_MODES = ("auto", "offline", "online", "disabled")
AUGMENTS = ("none", "crop", "randaugment")
# fedssl.common.retrieval.CLIP_MAP_POOLINGS (kept torch-free here; a test keeps them equal).
CLIP_POOLINGS = ("maxpool122-flatten", "gap")


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


def check_local_paths() -> bool:
    """Whether paths in a config name files on this machine (see :func:`paths_elsewhere`)."""
    return _CHECK_LOCAL_PATHS.get()


def _key(default: Any, doc: str, **rules: Any) -> Any:
    return field(default=default, metadata={"doc": doc, **rules})


@dataclass(frozen=True)
class RunConfig:
    """Typed view of the run config. Field ``foo_bar`` is the TOML key ``foo-bar``."""

    # --- the run
    task: str = _key("image-ssl", "client task (what clients train)", registry="tasks")
    num_server_rounds: int = _key(8, "federated rounds", min=1)
    seed: int = _key(0, "one seed for partitioning, sampling, init and augmentation", min=0)
    output_dir: str = _key("", "absolute run directory; empty: ~/fedssl-runs/<run-name>")
    run_name: str = _key("", "run name (W&B name too), a plain name (letters, digits, . _ + = , -);"
                         " empty: <dataset>-<ssl-method>-<strategy>-<time>-<random>",
                         pattern=r"[A-Za-z0-9][A-Za-z0-9._+=,-]*")
    resume_from: str = _key("", "run directory whose checkpoint the run continues from")
    # --- server
    strategy: str = _key("fedavg", "Flower aggregation strategy", registry="strategies")
    fraction_train: float = _key(1.0, "fraction of nodes sampled per round", gt=0.0, max=1.0)
    fraction_evaluate: float = _key(0.0, "fraction of nodes for federated eval", min=0.0, max=1.0)
    min_train_nodes: int = _key(2, "fewest replies a round needs to update the model", min=1)
    min_available_nodes: int = _key(2, "nodes to wait for before a round starts", min=1)
    round_timeout: float = _key(3600.0, "seconds to wait for the replies of a round", gt=0.0)
    max_failed_fraction: float = _key(
        0.5, "largest share of a round's sampled clients whose replies may fail; more stops "
        "the run (status failed); 1.0: never stop", min=0.0, max=1.0)
    server_optimizer: str = _key(
        "none", "server optimiser after ldawa/fedvssl's combination", registry="server optimizers"
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
        part="ldawa",
    )
    fedvssl_alpha: float = _key(0.9, "FedVSSL: share of the loss-based aggregate", min=0.0, max=1.0)
    fedvssl_beta: float = _key(1.0, "FedVSSL: smoothing with the last global", min=0.0, max=1.0)
    # --- model and SSL method
    model: str = _key("small-cnn", "backbone (image-ssl, audio-ssl, video-ssl) or network "
                      "(image-classification)", registry="models")
    ssl_method: str = _key("simclr", "self-supervised method (lightly), clip-order (audio), or "
                           "ctp, vcop, speed (video)", registry="SSL methods")
    projection_dim: int = _key(128, "projection head output size", min=1)
    hidden_dim: int = _key(512, "projection head hidden size", min=1)
    temperature: float = _key(0.1, "SimCLR NT-Xent temperature", gt=0.0)
    byol_momentum: float = _key(0.99, "BYOL target EMA base momentum", min=0.0, max=1.0)
    clip_order_segments: int = _key(3, "clip-order: segments per clip (n! orders)", min=2, max=5)
    clip_frames: int = _key(16, "video-ssl: frames per training and retrieval clip", min=4,
                            max=64)
    retrieval_pooling: str = _key(
        "maxpool122-flatten", "video-ssl: clip map -> feature for retrieval, kNN and probes "
        "(VCOP's max-pool (1,2,2) + flatten, or global average)", choices=CLIP_POOLINGS)
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
        "target", "RepOpt model mode: rep (Tr), csla, hs, target (plain)",
        part="image-classification",
    )
    repopt_scales: str = _key(
        "", "hyper-search scales file (fedssl hyper-search): target init and FedRepOpt masks"
    )
    label_smoothing: float = _key(0.1, "cross-entropy label smoothing", min=0.0, lt=1.0)
    augment: str = _key("crop", "supervised augmentation", choices=AUGMENTS)
    # --- data
    dataset: str = _key("embedded-digits", "dataset (image, or audio for audio-ssl)",
                        registry="datasets")
    data_dir: str = _key("", "dataset directory (real datasets)")
    hf_dataset: str = _key("", "Hugging Face dataset id (dataset=hf)")
    image_size: int = _key(32, "image side in pixels (and the frame side real videos are "
                           "decoded to)", min=8, max=512)
    video_split: int = _key(1, "ucf101, hmdb51: official train/test split (kinetics400 has one)",
                            min=1, max=3)
    video_frames: int = _key(64, "ucf101, hmdb51, kinetics400: frames decoded per video (its "
                             "first; a shorter one repeats its last)", min=4, max=1024)
    partitioner: str = _key("dirichlet", "how data is split over clients", registry="partitioners")
    dirichlet_alpha: float = _key(
        1.0, "Dirichlet concentration (dirichlet, paper-dirichlet)", gt=0.0
    )
    classes_per_client: int = _key(2, "classes per client (shard partitioner)", min=1)
    client_dist_dir: str = _key("", "fedvssl-clients: folder of FedVSSL's client_dist1.json .. "
                                "client_distN.json, one per client")
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
        if (check_local_paths() and self.resume_from
                and not (Path(self.resume_from) / "checkpoint.json").is_file()):
            raise ConfigError(
                f"resume-from={self.resume_from!r}: no checkpoint.json there; "
                "give the run directory of an earlier run"
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

    def default_run_name(self, what: str) -> str:
        """``<dataset>-<what>-<strategy>-<timestamp>-<8 hex>``, used when run-name is empty;
        ``what`` is the task's word for the run (the SSL method of an SSL run, the network of a
        classification run: :meth:`fedssl.clients.ClientTask.run_name`)."""
        # The random tail keeps two runs started in the same second apart.
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"{self.dataset}-{what}-{self.strategy}-{stamp}-{secrets.token_hex(4)}"

    @property
    def tags(self) -> list[str]:
        return [t.strip() for t in self.wandb_tags.split(",") if t.strip()]


def _toml_key(name: str) -> str:
    return name.replace("_", "-")


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
    if "pattern" in rules and value and not re.fullmatch(rules["pattern"], value):
        raise ConfigError(f"{key}={value!r} is not a plain name: use letters, digits and . _ + "
                          "= , - (no path separators, not starting with . or -)")
    if "choices" in rules:
        valid = rules["choices"]
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


# What a resumed run may set differently from the run it continues: more rounds, where it
# writes and reports, how long it waits, how often it evaluates, fault injection for tests.
# Everything else defines the run (data, model, method, strategy, seed, training settings).
RESUME_MAY_CHANGE = frozenset({
    "num-server-rounds", "resume-from", "output-dir", "run-name", "data-dir", "client-dist-dir",
    "round-timeout", "eval-every", "keep-round-models", "wandb-mode", "wandb-project",
    "wandb-group", "wandb-tags", "fault-partition", "fault-kind", "max-failed-fraction",
})


def resume_conflicts(original: Mapping[str, Any], resumed: Mapping[str, Any]) -> list[str]:
    """The keys that define a run and differ between its stored config and a resumed one,
    each as ``key: was X, now Y`` (an empty list when the resume may go ahead)."""
    return [f"{key}: was {original.get(key)!r}, now {value!r}"
            for key, value in resumed.items()
            if key not in RESUME_MAY_CHANGE and key in original and original[key] != value]


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
