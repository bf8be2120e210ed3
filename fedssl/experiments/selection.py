"""Pick the best global model of a finished run (FASSL: the last round need not be the best).

A run started with ``keep-round-models = true`` keeps the global model of every round in
``RUN_DIR/rounds/``. :func:`score_rounds` scores each kept round (and the random
initialisation, as round 0) with the task's ``selection_evaluate``; :func:`select_best` picks
the round with the best score; and :func:`write_selection` leaves the table, a plot and the
chosen model in the run directory.
``fedssl select-best RUN_DIR`` does all three.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from fedssl.clients.base import seed_global
from fedssl.tracking.checkpoint import (
    list_round_models,
    load_round_model,
    save_tensors,
)

if TYPE_CHECKING:
    from fedssl.clients.base import ClientTask
    from fedssl.config import RunConfig

__all__ = [
    "BEST_MODEL_FILE",
    "SELECTION_CSV",
    "SELECTION_PLOT",
    "SelectionError",
    "default_metric",
    "load_run_config",
    "pick_device",
    "round_ranges",
    "score_rounds",
    "select_best",
    "write_selection",
]

SELECTION_CSV = "model-selection.csv"
SELECTION_PLOT = "model-selection.png"
BEST_MODEL_FILE = "best-model.safetensors"
MODES = ("max", "min")


class SelectionError(ValueError):
    """A model-selection request cannot be served; the message says what is valid instead."""


def _metric_columns(scores: pd.DataFrame) -> list[str]:
    return [c for c in scores.columns if c != "round"]


def default_metric(scores: pd.DataFrame) -> str:
    """The metric ranked by when none is named: the first score column after ``round``, i.e.
    the first metric the task's ``selection_evaluate`` returns (``val-knn-accuracy`` for image-ssl).
    """
    available = _metric_columns(scores)
    if not available:
        raise SelectionError("the scores hold no metric; the task's selection evaluation "
                             "returned nothing")
    return available[0]


def select_best(scores: pd.DataFrame, metric: str, *, mode: str = "max") -> int:
    """The round whose ``metric`` is best.

    Parameters
    ----------
    scores
        One row per round: a ``round`` column and one column per metric (as
        :func:`score_rounds` returns).
    metric
        The column to rank by.
    mode
        ``"max"`` (higher is better, e.g. accuracy) or ``"min"`` (lower is better, e.g. loss).

    Returns
    -------
    int
        The best round; on a tie, the earliest of the tied rounds (fewer rounds of training
        for the same score). Rounds whose score is NaN are never chosen.

    Raises
    ------
    SelectionError
        (a ValueError) if ``mode`` or ``metric`` is not valid, or no round has a score.
    """
    if mode not in MODES:
        raise SelectionError(f"mode={mode!r} is not valid; choose one of: {', '.join(MODES)}")
    if "round" not in scores.columns:
        raise SelectionError("the scores have no 'round' column")
    available = _metric_columns(scores)
    if metric not in available:
        raise SelectionError(
            f"metric {metric!r} is not among the scores; available metrics: "
            f"{', '.join(available) or '(none)'}"
        )
    ranked = scores[["round", metric]].dropna().sort_values("round", kind="stable")
    if ranked.empty:
        raise SelectionError(f"no round has a {metric!r} score")
    values = ranked[metric].to_numpy(dtype=float)
    # argmax/argmin return the first of equal values: with rounds sorted, the earliest round.
    best = int(np.argmax(values) if mode == "max" else np.argmin(values))
    return int(ranked["round"].iloc[best])


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The :class:`~fedssl.config.RunConfig` of a run, from the ``config.json`` it wrote.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` has no ``config.json`` (it is not a run directory).
    fedssl.config.ConfigError
        If the stored config is no longer valid (e.g. a key this version does not know).
    """
    from fedssl.compose import validate
    from fedssl.config import RunConfig

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no config.json in {Path(run_dir)}; give the run directory of a finished "
            "`fedssl run` (the directory that holds config.json, metrics.csv and rounds/)"
        )
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SelectionError(f"{path} is unreadable ({err}); it is written by the run itself: "
                             "give the directory of a run that started") from None
    if not isinstance(stored, dict):
        raise SelectionError(f"{path} does not hold a run config (a JSON object)")
    stored.pop("run-dir", None)  # added by the ServerApp next to the run config
    # Scoring does not resume anything: a resumed run's source directory may be gone by now.
    stored["resume-from"] = ""
    return validate(RunConfig.from_run_config(stored))


def _initial_model(task: ClientTask, cfg: RunConfig) -> torch.nn.Module:
    # The ServerApp's seeding before its initial model: round 0 is the run's actual init.
    seed_global(cfg.seed)
    return task.build_model(cfg)


def _pick_rounds(kept: list[int], rounds: list[int] | None, every: int) -> list[int]:
    if every < 1:
        raise SelectionError(f"every={every} is not valid; it must be >= 1")
    if rounds is not None:
        if every != 1:
            raise SelectionError("give rounds or every, not both")
        missing = sorted(set(rounds) - set(kept) - {0})
        if missing:
            raise SelectionError(
                f"round(s) {missing} were not kept; kept rounds: {round_ranges(kept)}"
            )
        return sorted(set(rounds) - {0})
    # Every k-th round, and always the last kept one: the final model is the natural rival.
    return [r for r in kept if r % every == 0 or r == kept[-1]]


def round_ranges(rounds: list[int]) -> str:
    """``1-8, 10`` for [1..8, 10]: readable in an error message even for long runs."""
    parts, start = [], None
    for i, r in enumerate(rounds):
        start = r if start is None else start
        if i + 1 == len(rounds) or rounds[i + 1] != r + 1:
            parts.append(str(r) if r == start else f"{start}-{r}")
            start = None
    return ", ".join(parts)


def score_rounds(
    run_dir: str | Path,
    *,
    metric: str | None = None,
    rounds: list[int] | None = None,
    every: int = 1,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Score the random initialisation (round 0) and each kept round's global model.

    Parameters
    ----------
    run_dir
        A run directory of a run with ``keep-round-models = true``.
    metric
        If given, checked against the metrics of round 0 before the other rounds are scored,
        so that a typo fails in seconds rather than after the whole run is scored.
    rounds
        Score only these kept rounds (round 0 is always scored).
    every
        Score every k-th kept round (rounds divisible by ``every``) and the last kept round.
        Not together with ``rounds``.
    progress
        Show a tqdm bar on stderr (when stderr is a terminal).
    device
        Where to evaluate; ``None``: the GPU when one is visible, else the CPU.

    Returns
    -------
    pandas.DataFrame
        One row per scored round, sorted by round: a ``round`` column, then one column per
        metric of ``task.selection_evaluate`` (e.g. ``val-knn-accuracy``).

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` has no ``config.json`` or no kept round models.
    SelectionError
        (a ValueError) for an unknown ``metric``, a round that was not kept, or bad ``every``.
    """
    from tqdm import tqdm

    from fedssl.clients import get_task

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    kept = list_round_models(run_dir)
    if not kept:
        raise FileNotFoundError(
            f"{run_dir} has no kept round models (no {run_dir / 'rounds'}/round-*.safetensors); "
            "run with keep-round-models=true to keep every round's global model, e.g. "
            "`fedssl run keep-round-models=true ...`"
        )
    path_of = dict(kept)
    chosen = _pick_rounds(list(path_of), rounds, every)
    task = get_task(cfg.task)
    device = pick_device(device)
    model = _initial_model(task, cfg).to(device)

    rows: list[dict[str, Any]] = []
    # disable=None: no bar without a terminal, where redrawn bars are only noise in a log.
    bar = tqdm([0, *chosen], desc="scoring rounds", unit="round", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True)
    for rnd in bar:
        if rnd:
            _load_round(model, path_of[rnd], cfg)
        # The same seed before every evaluation: a score with any randomness in it (a probe's
        # init, a sampled subset) then differs between rounds only because the models do.
        seed_global(cfg.seed)
        # No no_grad()/eval() here: the task owns its protocol (and may train a probe).
        scores = task.selection_evaluate(model, cfg)
        if rnd == 0 and metric is not None and metric not in scores:
            bar.close()
            raise SelectionError(
                f"metric {metric!r} is not scored by task {cfg.task!r}; available metrics: "
                f"{', '.join(scores) or '(none)'}"
            )
        rows.append({"round": rnd, **{k: float(v) for k, v in scores.items()}})
        if metric is not None:
            bar.set_postfix({metric: f"{scores[metric]:.4f}"})
    frame = pd.DataFrame(rows)
    frame["round"] = frame["round"].astype(int)
    return frame


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device to score on; ``None``: the GPU when one is visible, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise SelectionError(f"--device {str(device)!r} is not a device; use cpu, cuda or "
                             "cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SelectionError(f"--device {str(device)!r}: torch sees no GPU here; use cpu")
    return device


def _load_round(model: torch.nn.Module, path: Path, cfg: RunConfig) -> None:
    """Load a kept round's arrays; a file of another network is a SelectionError."""
    try:
        model.load_state_dict(load_round_model(path))
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise SelectionError(f"{path} does not fit the run's model (model={cfg.model!r}, "
                             f"ssl-method={cfg.ssl_method!r} in config.json): {first}") from None


def write_selection(
    run_dir: str | Path, scores: pd.DataFrame, metric: str, best_round: int
) -> dict[str, Path]:
    """Write the selection's table, plot and chosen model into ``run_dir``.

    Parameters
    ----------
    run_dir
        The run directory the scores came from.
    scores
        The table of :func:`score_rounds`.
    metric
        The metric the round was chosen by.
    best_round
        The chosen round (:func:`select_best`); 0 means the random initialisation won, whose
        model is rebuilt from the run's config and seed.

    Returns
    -------
    dict[str, pathlib.Path]
        ``{"csv": model-selection.csv, "plot": model-selection.png, "model":
        best-model.safetensors}``: the best round's arrays, with its round, metric and score
        as metadata (:func:`fedssl.tracking.load_tensors`, ``load_tensors_metadata``).
    """
    run_dir = Path(run_dir)
    row = scores.loc[scores["round"] == best_round]
    if row.empty or metric not in scores.columns:
        raise SelectionError(
            f"round {best_round} / metric {metric!r} are not in the scores; scored rounds: "
            f"{round_ranges(sorted(scores['round'].tolist()))}, metrics: "
            f"{', '.join(_metric_columns(scores))}"
        )
    csv_path = run_dir / SELECTION_CSV
    scores.sort_values("round").to_csv(csv_path, index=False)
    plot_path = _plot_selection(scores, metric, best_round, run_dir / SELECTION_PLOT)

    if best_round == 0:
        from fedssl.clients import get_task

        cfg = load_run_config(run_dir)
        state = _initial_model(get_task(cfg.task), cfg).state_dict()
    else:
        path_of = dict(list_round_models(run_dir))
        if best_round not in path_of:
            raise FileNotFoundError(f"round {best_round} of {run_dir} was not kept")
        state = load_round_model(path_of[best_round])
    model_path = save_tensors(run_dir / BEST_MODEL_FILE, state, {
        "round": int(best_round), "metric": metric, "score": float(row[metric].iloc[0])})
    return {"csv": csv_path, "plot": plot_path, "model": model_path}


def _plot_selection(scores: pd.DataFrame, metric: str, best_round: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    frame = scores.sort_values("round")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in _metric_columns(frame):
        chosen = name == metric
        ax.plot(frame["round"], frame[name], marker="o", markersize=4 if chosen else 3,
                linewidth=2.0 if chosen else 1.0, alpha=1.0 if chosen else 0.6, label=name)
    best = frame.loc[frame["round"] == best_round, metric].iloc[0]
    ax.axvline(best_round, color="grey", linestyle="--", linewidth=1)
    ax.scatter([best_round], [best], s=140, marker="*", color="red", zorder=5,
               label=f"best: round {best_round} ({metric} {best:.4f})")
    ax.set_xlabel("round (0: random init)")
    ax.set_ylabel("score")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("global model per round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
