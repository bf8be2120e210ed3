"""The composer: asks each part whether a run config fits it, and builds the parts of a run.

The config schema (:mod:`fedssl.config`) checks each value on its own; here the registries
say whether a name exists, and each part checks what concerns it: the task its dataset, model
and SSL method (its catalogue entry, :func:`fedssl.catalogue.tasks.check_task`), the strategy
its own settings (its ``check`` tag), the partitioner whether the data has groups, the dataset
whether its files are where ``data-dir`` says. :func:`validate` runs once per process and
config; the CLI, ``fedssl deploy submit``, the ServerApp and ``fedssl select-best`` call it.
Errors are :class:`~fedssl.config.ConfigError` naming the key, the value and what is valid.

Validation reads only the catalogue (:mod:`fedssl.catalogue`: names, tags, torch-free checks)
and, for the file check, the dataset's layout check: no torch, lightly, torchvision,
torchaudio, scikit-learn or Ray is imported to refuse a config (an import-linter contract
keeps it so), so an error answers in well under a second. Building the parts imports them.

The ServerApp then builds its parts here: the task, the strategy (:func:`build_strategy`)
and the callbacks of its round loop (:func:`build_callbacks`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedssl.catalogue import (
    DATASET_REGISTRY,
    MODELS,
    PARTITIONER_REGISTRY,
    SERVER_OPTIMIZERS,
    SSL_REGISTRY,
    STRATEGIES,
    TASKS,
    StrategyParams,
    check_partitioner,
    check_task,
    get_task,
)
from fedssl.catalogue.tasks import accepts_model
from fedssl.common.registry import Registry
from fedssl.config import ConfigError, RunConfig, check_local_paths

if TYPE_CHECKING:
    from flwr.serverapp.strategy import Strategy

    from fedssl.callbacks import ServerCallback
    from fedssl.clients import ClientTask

__all__ = [
    "build_callbacks",
    "build_strategy",
    "default_run_name",
    "strategy_warnings",
    "task_of",
    "validate",
]

# Which registry knows the names a key may take, in the order errors are reported.
_NAMED_KEYS: tuple[tuple[str, str, Registry], ...] = (
    ("task", "task", TASKS),
    ("strategy", "strategy", STRATEGIES),
    ("server-optimizer", "server_optimizer", SERVER_OPTIMIZERS),
    ("model", "model", MODELS),
    ("ssl-method", "ssl_method", SSL_REGISTRY),
    ("dataset", "dataset", DATASET_REGISTRY),
    ("partitioner", "partitioner", PARTITIONER_REGISTRY),
)


def validate(cfg: RunConfig) -> RunConfig:
    """``cfg`` when every part accepts it; :class:`ConfigError` otherwise.

    Memoised per process (a frozen config is hashable): the ClientApp processes, the
    ServerApp and the CLI each validate a config once. Inside
    :func:`fedssl.config.paths_elsewhere` files are not looked for.
    """
    _validate(cfg, check_local_paths())
    return cfg


@functools.lru_cache(maxsize=32)
def _validate(cfg: RunConfig, local_paths: bool) -> None:
    for key, attr, registry in _NAMED_KEYS:
        value = getattr(cfg, attr)
        if value not in registry:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of: "
                              f"{', '.join(registry)}")
    if wrong := check_task(cfg):
        raise ConfigError(f"task={cfg.task!r} does not fit: " + "; ".join(wrong)
                          + _model_hint(cfg))
    try:
        data_tags = DATASET_REGISTRY.tags(cfg.dataset)
        check_partitioner(cfg.partitioner, has_groups=data_tags["groups"],
                          has_names=data_tags.get("names", False))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    strategy = STRATEGIES.tags(cfg.strategy)
    if cfg.server_optimizer != "none" and not strategy["replaces_mean"]:
        accepting = STRATEGIES.names(replaces_mean=True)
        raise ConfigError(
            f"server-optimizer={cfg.server_optimizer!r} applies to the strategies "
            f"{', '.join(accepting)}, not strategy={cfg.strategy!r}; "
            "Flower's optimisers are strategies of their own (e.g. strategy=fedyogi)")
    if "check" in strategy and (wrong := strategy["check"](cfg, MODELS)):
        raise ConfigError("; ".join(wrong))
    if local_paths:
        _check_files(cfg)


def _model_hint(cfg: RunConfig) -> str:
    if accepts_model(cfg.task, cfg.model):
        return ""
    takers = [name for name in TASKS if accepts_model(name, cfg.model)]
    return f" (model={cfg.model!r} is trained by task={' or '.join(takers)})" if takers else ""


def _check_files(cfg: RunConfig) -> None:
    if DATASET_REGISTRY.tags(cfg.dataset)["local_files"]:
        # The dataset's layout check (fedssl.datasets.checks or .audio_loader), imported now.
        check = DATASET_REGISTRY.get(cfg.dataset)
        from fedssl.datasets.base import DatasetNotFoundError

        try:
            check(data_dir=cfg.data_dir, hf_dataset=cfg.hf_dataset)
        except DatasetNotFoundError as err:
            raise ConfigError(f"data-dir={cfg.data_dir!r}: {err}") from None
        except ValueError as err:
            raise ConfigError(f"dataset={cfg.dataset!r}: {err}") from None
    # A partitioner that reads files of its own (fedvssl-clients' client lists) checks them.
    if (check := PARTITIONER_REGISTRY.tags(cfg.partitioner).get("check_files")) and (
            wrong := check(cfg)):
        raise ConfigError("; ".join(wrong))
    if cfg.repopt_scales and not Path(cfg.repopt_scales).is_file():
        raise ConfigError(
            f"repopt-scales={cfg.repopt_scales!r}: no such file; write one with "
            f"`fedssl hyper-search --model {cfg.model} --out FILE`")


def task_of(cfg: RunConfig) -> ClientTask:
    """The task of a validated run (one shared instance per process)."""
    return get_task(validate(cfg).task)


def default_run_name(cfg: RunConfig) -> str:
    """``<dataset>-<the task's word: SSL method or model>-<strategy>-<timestamp>``."""
    return cfg.default_run_name(get_task(cfg.task).run_name(cfg))


def build_strategy(cfg: RunConfig) -> Strategy:
    """The run's Flower strategy, built from its server-side settings."""
    params = StrategyParams(**{f: getattr(cfg, f) for f in StrategyParams.__dataclass_fields__})
    return STRATEGIES.get(validate(cfg).strategy)(params)


def strategy_warnings(cfg: RunConfig) -> list[str]:
    """Settings the strategy accepts but that are probably not meant (the ServerApp logs them)."""
    warn = STRATEGIES.tags(cfg.strategy).get("warn")
    return warn(cfg) if warn else []


def build_callbacks(cfg: RunConfig, task: ClientTask, **sinks: Any) -> list[ServerCallback]:
    """The ServerApp's round-loop callbacks, in the order they run after each round:
    central evaluation, metrics CSV, W&B, checkpoint/resume, progress."""
    from fedssl.callbacks import default_callbacks

    return default_callbacks(cfg, task, **sinks)
