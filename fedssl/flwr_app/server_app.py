"""Flower ServerApp: one run, as a round loop plus callbacks.

Parse and validate the config, open the run directory (or reopen it on resume), learn which
partition each node holds, build the strategy (wrapped in :class:`GuardedStrategy`) and the
callbacks (:mod:`fedssl.callbacks`: central evaluation, metrics CSV, W&B, checkpoint,
progress), run Flower's round loop, evaluate the final model against its random initialisation
and hand the summary to the callbacks. A round that loses more than ``max-failed-fraction`` of
its sampled clients stops the run (:mod:`fedssl.flwr_app.failures`): the summary says
``"status": "failed"`` with the round and the errors, and the ServerApp raises, so Flower
reports the run failed.
"""

from __future__ import annotations

import json
import time
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any

import pandas as pd
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedssl.callbacks import PROGRESS_PREFIX, RoundEnd, RunContext, set_rng_state
from fedssl.clients import seed_global
from fedssl.common import messages
from fedssl.compose import (
    build_callbacks,
    build_strategy,
    default_run_name,
    strategy_warnings,
    task_of,
)
from fedssl.config import ConfigError, RunConfig, resume_conflicts
from fedssl.datasets import skipped_files
from fedssl.flwr_app.failures import FailureTally, TooManyFailures
from fedssl.strategies import GuardedStrategy, restore_strategy_state
from fedssl.tracking import RunRecorder, WandbSink, load_checkpoint, save_tensors

__all__ = ["PROGRESS_PREFIX", "app", "discover_partitions", "resolve_run_dir", "run_federated"]

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_federated(grid, RunConfig.from_run_config(context.run_config))


def resolve_run_dir(cfg: RunConfig) -> tuple[Path, str]:
    """The run directory (always absolute) and the run name."""
    if cfg.resume_from and not cfg.output_dir:
        run_dir = Path(cfg.resume_from)
    elif cfg.output_dir:
        run_dir = Path(cfg.output_dir)
    else:
        run_dir = Path.home() / "fedssl-runs" / (cfg.run_name or default_run_name(cfg))
    return run_dir.expanduser().resolve(), cfg.run_name or run_dir.name


def discover_partitions(grid: Grid, cfg: RunConfig) -> dict[int, int]:
    """Ask every node for its partition id (node ids are random, partitions are not)."""
    while len(node_ids := list(grid.get_node_ids())) < cfg.min_available_nodes:
        log(INFO, "Waiting for nodes: %d connected, %d needed", len(node_ids),
            cfg.min_available_nodes)
        time.sleep(1)
    queries = [Message(RecordDict({messages.CONFIG: ConfigRecord()}), dst_node_id=nid,
                       message_type=MessageType.QUERY) for nid in node_ids]
    partition_of: dict[int, int] = {}
    for reply in grid.send_and_receive(queries, timeout=cfg.round_timeout):
        if reply.has_error():
            log(WARNING, "node %s did not say its partition: %s", reply.metadata.src_node_id,
                reply.error.reason)
            continue
        partition_of[reply.metadata.src_node_id] = int(
            reply.content[messages.METRICS][messages.PARTITION_ID])
    return partition_of


def run_federated(grid: Grid, cfg: RunConfig) -> dict[str, Any]:
    """Run all rounds of ``cfg`` on ``grid``; return the summary written to summary.json."""
    t_start = time.perf_counter()
    task = task_of(cfg)
    run_dir, run_name = resolve_run_dir(cfg)
    seed_global(cfg.seed)
    initial_model = task.build_model(cfg)
    initial_arrays = ArrayRecord(initial_model.state_dict())

    checkpoint = load_checkpoint(cfg.resume_from) if cfg.resume_from else None
    done = checkpoint["round"] if checkpoint else 0
    if done >= cfg.num_server_rounds:
        raise ValueError(f"resume-from={cfg.resume_from!r} already finished {done} rounds; "
                         f"set num-server-rounds above {done} to continue")
    if checkpoint:
        _check_resume(cfg, run_dir)
    inner = build_strategy(cfg)
    run = RunContext(
        cfg=cfg, task=task, run_dir=run_dir, run_name=run_name, strategy=inner,
        recorder=RunRecorder(run_dir, resume_round=done if checkpoint else None),
        wandb=WandbSink(mode=cfg.wandb_mode, project=cfg.wandb_project, name=run_name,
                        group=cfg.wandb_group, tags=cfg.tags, config=cfg.to_run_config(),
                        run_dir=run_dir, job_type=cfg.strategy,
                        run_id=checkpoint.get("wandb-id") if checkpoint else None),
        done_rounds=done)
    log(INFO, "%s run directory: %s", PROGRESS_PREFIX, run_dir)

    partition_of = discover_partitions(grid, cfg)
    run.num_partitions = len(partition_of)
    if checkpoint:
        _check_resume(cfg, run_dir, num_partitions=run.num_partitions)
    run.histograms = task.class_histograms(cfg, run.num_partitions)
    log(INFO, "%s %d partitions (%s), sizes %s", PROGRESS_PREFIX, run.num_partitions,
        cfg.partitioner, run.histograms.sum(axis=1).tolist())
    for warning in strategy_warnings(cfg):
        log(WARNING, "%s %s", PROGRESS_PREFIX, warning)
    if checkpoint:
        restore_strategy_state(inner, checkpoint["strategy-state"])
        set_rng_state(checkpoint["rng"])
        initial_arrays = ArrayRecord(checkpoint["arrays"])
        log(INFO, "%s resuming after round %d from %s", PROGRESS_PREFIX, done, cfg.resume_from)

    eval_model = task.build_model(cfg)
    callbacks = build_callbacks(cfg, task, eval_model=eval_model)
    tally = FailureTally()
    strategy = _guarded(inner, run, partition_of, tally)
    for callback in callbacks:
        callback.on_train_begin(run)

    clock = [time.perf_counter()]  # end of the previous round, for per-round wall times
    t_rounds = clock[0]

    def after_round(local_round: int, arrays: ArrayRecord) -> None:
        now = time.perf_counter()
        if local_round == 0:  # the random init; the final evaluation covers it
            clock[0] = now
            return None
        rnd = local_round + done
        end = RoundEnd(rnd, arrays.to_torch_state_dict(), {"train": strategy.train_metrics.get(
            rnd, {}) | {"round-wall-time-s": now - clock[0]}})
        clock[0] = now
        for callback in callbacks:
            callback.after_round(run, end)
        if lost := tally.lost(rnd):
            log(WARNING, "%s round %d: %d of %d sampled clients failed", PROGRESS_PREFIX, rnd,
                lost, tally.sampled.get(rnd, 0))
        # After the callbacks: the round is in metrics.csv and its checkpoint is written.
        tally.check(rnd, cfg.max_failed_fraction, timeout=cfg.round_timeout,
                    run_dir=str(run_dir))
        return None

    try:
        result = strategy.start(grid=grid, initial_arrays=initial_arrays,
                                num_rounds=cfg.num_server_rounds - done,
                                timeout=cfg.round_timeout, train_config=ConfigRecord({}),
                                evaluate_fn=after_round)
    except TooManyFailures as err:
        log(ERROR, "%s run stopped: %s", PROGRESS_PREFIX, err)
        summary = _summary(run, tally, t_start, status="failed") | {
            "failed-round": err.round, "failure": str(err)}
        for callback in callbacks:
            callback.on_train_end(run, summary)
        raise
    # Flower leaves Result.arrays empty when no round produced an aggregate.
    final_arrays = result.arrays if len(result.arrays) else initial_arrays
    t_train = time.perf_counter() - t_rounds

    log(INFO, "%s final evaluation", PROGRESS_PREFIX)
    eval_model.load_state_dict(final_arrays.to_torch_state_dict())
    final = task.final_evaluate(eval_model, cfg, baseline=initial_model)
    run.recorder.log(cfg.num_server_rounds, "final", final)
    save_tensors(run_dir / "final_model.safetensors", final_arrays.to_torch_state_dict())
    skipped = _skipped_files(task, cfg, run_dir)
    summary = _summary(run, tally, t_start, status="completed") | {
        "rounds-wall-time-s": round(t_train, 2),
        "skipped-files-count": len(skipped),
        **final,
    }
    for callback in callbacks:
        callback.on_train_end(run, summary)
    for key, value in final.items():
        log(INFO, "%s final %s = %.4f", PROGRESS_PREFIX, key, value)
    log(INFO, "%s results in %s", PROGRESS_PREFIX, run_dir)
    return summary


def _summary(run: RunContext, tally: FailureTally, t_start: float, *,
             status: str) -> dict[str, Any]:
    """What every summary.json holds, whether the run completed or stopped."""
    metrics = run.recorder.metrics()
    return {
        "status": status,
        "run-name": run.run_name,
        "run-dir": str(run.run_dir),
        "rounds": run.cfg.num_server_rounds,
        "resumed-after-round": run.done_rounds,
        "num-partitions": run.num_partitions,
        "total-failures": int(metrics[(metrics["metric"] == "failures")]["value"].sum()),
        # Sampled clients without a usable reply, by round (this process's rounds only).
        "failures-by-round": {str(rnd): n for rnd, n in tally.by_round().items()},
        "server-wall-time-s": round(time.perf_counter() - t_start, 2),
    }


def _skipped_files(task: Any, cfg: RunConfig, run_dir: Path) -> list[str]:
    """Data files the server's loaders could not decode and skipped (each named once), also
    written to ``skipped-files.txt``; the clients' own warnings are in their logs."""
    data = getattr(task, "data", None)  # the loaded splits are memoised: nothing reloads
    skipped = [] if data is None else skipped_files(data.split(cfg, "train"),
                                                    data.split(cfg, "test"))
    if skipped:
        (run_dir / "skipped-files.txt").write_text("\n".join(skipped) + "\n")
        log(WARNING, "%s skipped %d unreadable data files (listed in skipped-files.txt): %s",
            PROGRESS_PREFIX, len(skipped), ", ".join(skipped[:10]))
    return skipped


def _check_resume(cfg: RunConfig, run_dir: Path, num_partitions: int | None = None) -> None:
    """Refuse to continue a run with settings that define it changed, before anything of the
    original record is rewritten (deployment reaches here without the CLI's check)."""
    stored = run_dir / "config.json"
    if num_partitions is None and stored.is_file():
        conflicts = resume_conflicts(json.loads(stored.read_text()), cfg.to_run_config())
        if conflicts:
            raise ConfigError(f"resume-from={cfg.resume_from!r}: these settings differ from "
                              f"the run's own: {'; '.join(conflicts)}")
    partitions = run_dir / "partitions.csv"
    if num_partitions is not None and partitions.is_file():
        had = len(pd.read_csv(partitions))
        if had != num_partitions:
            raise ConfigError(f"resume-from={cfg.resume_from!r}: the run had {had} partitions, "
                              f"this federation has {num_partitions} nodes; resume it with "
                              f"{had} (--num-supernodes {had})")


def _guarded(inner: Any, run: RunContext, partition_of: dict[int, int],
             tally: FailureTally) -> GuardedStrategy:
    """``inner`` with fault handling; per-client metrics and failures go to the record and,
    for training, to ``tally``."""

    def on_client_metrics(rnd: int, phase: str, pid: int, metrics: dict) -> None:
        run.recorder.log(rnd, phase, metrics, partition=pid)
        run.wandb.add_client_metrics(rnd, phase, pid, metrics)
        if phase == "train":
            tally.replied(rnd)

    def on_client_failure(rnd: int, phase: str, pid: int, reason: str) -> None:
        # A lost or faulty client is a row of metrics.csv too: which partition, which round.
        run.recorder.log(rnd, phase, {"failed": 1}, partition=pid)
        if phase == "train":
            tally.failed(rnd, reason)

    return GuardedStrategy(
        inner,
        min_train_nodes=run.cfg.min_train_nodes,
        partition_of=lambda nid: partition_of.get(nid, run.num_partitions + (nid % 10**6)),
        round_offset=run.done_rounds,
        on_client_metrics=on_client_metrics,
        on_client_failure=on_client_failure,
        on_train_sent=tally.sent,
    )
