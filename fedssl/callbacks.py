"""The ServerApp's round-loop callbacks (pfl-research's pattern): what happens around rounds.

The loop (:func:`fedssl.flwr_app.server_app.run_federated`) runs Flower's strategy and calls,
in order, each callback's :meth:`~ServerCallback.on_train_begin` once, then
:meth:`~ServerCallback.after_round` after every round, then
:meth:`~ServerCallback.on_train_end` with the summary. The built-in ones, in the order they
run (:func:`default_callbacks`): central evaluation, metrics CSV, W&B, checkpoint, progress.
A callback reads and adds to the round's metrics (``RoundEnd.metrics``, by phase), so the ones
after central evaluation see its scores.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from logging import INFO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from flwr.common.logger import log

from fedssl.datasets import plot_class_histograms
from fedssl.strategies import strategy_state
from fedssl.tracking import save_checkpoint, save_round_model

if TYPE_CHECKING:
    import pandas as pd
    from flwr.serverapp.strategy import Strategy

    from fedssl.clients import ClientTask
    from fedssl.config import RunConfig
    from fedssl.tracking import RunRecorder, WandbSink

__all__ = [
    "PROGRESS_PREFIX",
    "CentralEvaluation",
    "Checkpointing",
    "MetricsCsv",
    "Progress",
    "RoundEnd",
    "RunContext",
    "ServerCallback",
    "WandbDashboard",
    "default_callbacks",
    "rng_state",
    "set_rng_state",
]

PROGRESS_PREFIX = "[fedssl]"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


@dataclass
class RunContext:
    """What the callbacks of one run share."""

    cfg: RunConfig
    task: ClientTask
    run_dir: Path
    run_name: str
    recorder: RunRecorder
    wandb: WandbSink
    strategy: Strategy  # the inner (unguarded) strategy, whose state is checkpointed
    done_rounds: int = 0  # rounds finished before this process (resume)
    num_partitions: int = 0
    histograms: pd.DataFrame | None = None


@dataclass
class RoundEnd:
    """One finished round: its global number, the new global model and its metrics."""

    round: int
    state: dict[str, torch.Tensor]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


class ServerCallback:
    """A hook into the round loop; override what you need."""

    def on_train_begin(self, run: RunContext) -> None:
        """Before the first round (after the run directory and partitions are known)."""

    def after_round(self, run: RunContext, end: RoundEnd) -> None:
        """After each round; may add metrics to ``end.metrics``."""

    def on_train_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        """After the final evaluation, with the summary (may add to it)."""


class CentralEvaluation(ServerCallback):
    """Scores the global model with the task's central evaluation every ``eval-every`` rounds
    and at the last round (``end.metrics["central"]``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model  # built once; every evaluation loads the round's weights

    def after_round(self, run: RunContext, end: RoundEnd) -> None:
        cfg = run.cfg
        if cfg.eval_every and (end.round % cfg.eval_every == 0
                               or end.round == cfg.num_server_rounds):
            self.model.load_state_dict(end.state)
            end.metrics["central"] = run.task.central_evaluate(self.model, cfg)


class MetricsCsv(ServerCallback):
    """The run directory's record: config, partitions, metrics.csv, summary and plots."""

    def on_train_begin(self, run: RunContext) -> None:
        run.recorder.write_json("config.json",
                                run.cfg.to_run_config() | {"run-dir": str(run.run_dir)})
        if run.histograms is not None:
            run.histograms.to_csv(run.run_dir / "partitions.csv", index_label="partition")
            plot_class_histograms(run.histograms, run.run_dir / "partitions.png")

    def after_round(self, run: RunContext, end: RoundEnd) -> None:
        for phase, metrics in end.metrics.items():
            run.recorder.log(end.round, phase, metrics)

    def on_train_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        run.recorder.write_json("summary.json", summary)
        run.recorder.plot()


class WandbDashboard(ServerCallback):
    """Per-round server metrics, partitions, plots and the summary to W&B."""

    def on_train_begin(self, run: RunContext) -> None:
        if run.histograms is not None:
            run.wandb.log_partitions(run.histograms, run.run_dir / "partitions.png")

    def after_round(self, run: RunContext, end: RoundEnd) -> None:
        run.wandb.log_round(end.round, end.metrics.get("train", {}),
                            end.metrics.get("central", {}))

    def on_train_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        run.wandb.log_plots(run.run_dir)
        run.wandb.log_summary(summary)
        run.wandb.finish()


class Checkpointing(ServerCallback):
    """After every round: the round's global model (``keep-round-models``) and the checkpoint
    a resumed run continues from (model, strategy state, RNG state, W&B run id)."""

    def after_round(self, run: RunContext, end: RoundEnd) -> None:
        if run.cfg.keep_round_models:
            # Before the checkpoint: every round a resume can start after has its model kept
            # (`fedssl select-best` scores them afterwards).
            save_round_model(run.run_dir, end.round, end.state)
        save_checkpoint(run.run_dir, {
            "round": end.round,
            "arrays": end.state,
            "strategy-state": strategy_state(run.strategy),
            "rng": rng_state(),
            "wandb-id": run.wandb.run_id,
        })


class Progress(ServerCallback):
    """One ``[fedssl] round r/R`` log line per round (``fedssl run`` draws its bar from it)."""

    SHOWN = ("train-loss", "knn-accuracy", "test-accuracy", "failures", "ldawa-delta-mean")

    def on_train_begin(self, run: RunContext) -> None:
        self.started = time.perf_counter()

    def after_round(self, run: RunContext, end: RoundEnd) -> None:
        merged = end.metrics.get("train", {}) | end.metrics.get("central", {})
        shown = " | ".join(f"{k} {v:.4g}" for k, v in merged.items() if k in self.SHOWN)
        log(INFO, "%s round %d/%d | %s | %.1fs", PROGRESS_PREFIX, end.round,
            run.cfg.num_server_rounds, shown, time.perf_counter() - self.started)


def default_callbacks(cfg: RunConfig, task: ClientTask, *,
                      eval_model: torch.nn.Module) -> list[ServerCallback]:
    """The built-in callbacks in the order they run."""
    return [CentralEvaluation(eval_model), MetricsCsv(), WandbDashboard(), Checkpointing(),
            Progress()]
