"""Fine-tune a finished run's global model on labelled data: ``fedssl finetune RUN_DIR``.

The weights come from the run directory (:func:`load_weights`): ``final``
(``final_model.safetensors``; for a run that stopped early, the checkpoint of its last
finished round), ``best`` (``best-model.safetensors``, written by ``fedssl select-best``), a kept
round ``N`` (``rounds/round-000N.safetensors``), or round 0, the run's random initialisation,
rebuilt from its config and seed. :func:`run_finetune` fine-tunes the backbone with
:func:`fedssl.clients.finetune.finetune` for each seed (and, with ``baseline``, the random
initialisation with the same recipe, so the gain of the federated pretraining shows) and
records each result as soon as it is known:

* ``RUN_DIR/finetune/<weights>-<mode>-<fraction>.json``: the settings, the weights' source,
  one entry per (weights, seed) with its per-epoch history, and the mean and standard
  deviation over the seeds; a later fine-tune of the same weights, mode and fraction
  replaces it;
* ``RUN_DIR/finetune.csv``: one row per (weights, seed) of every fine-tune ever run on this
  run directory, appended, never rewritten.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedssl.clients.base import seed_global
from fedssl.clients.finetune import FineTuneError, FineTuneSettings, finetune, lr_milestones
from fedssl.experiments.selection import load_run_config, pick_device, round_ranges
from fedssl.tracking.checkpoint import (
    has_checkpoint,
    list_round_models,
    load_checkpoint,
    load_round_model,
    load_tensors_metadata,
)

if TYPE_CHECKING:
    from fedssl.clients.ssl_task import SSLTask
    from fedssl.config import RunConfig

__all__ = [
    "CSV_COLUMNS",
    "FINETUNE_CSV",
    "FINETUNE_DIR",
    "Weights",
    "load_weights",
    "parse_weights",
    "results_path",
    "run_finetune",
]

FINETUNE_DIR = "finetune"
FINETUNE_CSV = "finetune.csv"
FINAL_MODEL_FILE = "final_model.safetensors"
BEST_MODEL_FILE = "best-model.safetensors"  # fedssl.experiments.selection writes it
CSV_COLUMNS = ("time", "weights", "round", "mode", "label-fraction", "seed", "epochs",
               "batch-size", "lr", "weight-decay", "test-clips", "train-samples",
               "test-samples", "top1", "top5", "test-loss", "train-loss", "train-top1",
               "wall-s", "device")
SSL_MODALITIES = ("image", "audio", "video")
# What one sample of each modality is called in the progress lines.
_NOUNS = {"image": "images", "audio": "clips", "video": "videos"}


@dataclass
class Weights:
    """A global model of a run: which one, the round it is from, where it was read, and its
    arrays (``None`` for the random initialisation, which is rebuilt)."""

    label: str
    round: int
    source: str
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def parse_weights(text: str) -> str | int:
    """``--round``: ``"final"``, ``"best"`` or a round number >= 0 (0: the random init)."""
    text = text.strip().lower()
    if text in ("final", "best"):
        return text
    try:
        rnd = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not final, best or a round number") from None
    if rnd < 0:
        raise ValueError(f"round {rnd} is not valid: rounds are 0 (the random init) and up")
    return rnd


def _final_round(run_dir: Path, cfg: RunConfig) -> int:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        return int(summary["rounds"])
    except (OSError, ValueError, KeyError, TypeError):
        return cfg.num_server_rounds


def _available(run_dir: Path, kept: list[int]) -> str:
    """What ``--round`` can name in this run directory, for an error message."""
    parts = []
    if (run_dir / FINAL_MODEL_FILE).is_file() or has_checkpoint(run_dir) or kept:
        parts.append("final")
    if (run_dir / BEST_MODEL_FILE).is_file():
        parts.append("best")
    parts.append("0 (the random init)")
    if kept:
        parts.append(f"a kept round ({round_ranges(kept)})")
    return ", ".join(parts)


def load_weights(run_dir: str | Path, which: str | int, cfg: RunConfig) -> Weights:
    """The global model ``which`` names (``"final"``, ``"best"`` or a round) of ``run_dir``.

    ``final`` is ``final_model.safetensors`` when the run finished; otherwise the checkpoint
    of its last finished round, or failing that its last kept round. A round is its kept
    file, or the final model or checkpoint when that is of the round asked for.

    Raises
    ------
    FineTuneError
        If the run directory holds no such model; the message lists what it holds.
    fedssl.tracking.CheckpointError
        If the file is damaged.
    """
    run_dir = Path(run_dir)
    kept = dict(list_round_models(run_dir))
    final_file = run_dir / FINAL_MODEL_FILE
    if which == 0:
        return Weights("random-init", 0, f"rebuilt from config.json (seed {cfg.seed})")
    if which == "best":
        path = run_dir / BEST_MODEL_FILE
        if not path.is_file():
            raise FineTuneError(
                f"--round best: {run_dir} has no {BEST_MODEL_FILE}; pick it first with "
                f"`fedssl select-best {run_dir}`, or choose one of: "
                f"{_available(run_dir, sorted(kept))}")
        rnd = int(load_tensors_metadata(path).get("round", -1))
        return Weights("best", rnd, str(path), load_round_model(path))
    final_round = _final_round(run_dir, cfg)
    if which in ("final", final_round) and final_file.is_file():
        return Weights("final" if which == "final" else f"round-{which}", final_round,
                       str(final_file), load_round_model(final_file))
    if isinstance(which, int) and which in kept:
        return Weights(f"round-{which}", which, str(kept[which]), load_round_model(kept[which]))
    if has_checkpoint(run_dir):
        checkpoint = load_checkpoint(run_dir)
        if which in ("final", checkpoint["round"]):
            return Weights("final" if which == "final" else f"round-{which}",
                           checkpoint["round"], f"{run_dir / 'checkpoint.json'} (the run "
                           f"stopped after round {checkpoint['round']})", checkpoint["arrays"])
    if which == "final" and kept:
        last = max(kept)
        return Weights("final", last, f"{kept[last]} (the last kept round; no "
                       f"{FINAL_MODEL_FILE} or checkpoint)", load_round_model(kept[last]))
    if which == "final":
        raise FineTuneError(
            f"{run_dir} holds no global model: no {FINAL_MODEL_FILE}, checkpoint.json or "
            "rounds/round-*.safetensors; give the directory of a run that finished at least "
            "one round (or --round 0 to fine-tune the random initialisation)")
    raise FineTuneError(f"--round {which}: round {which} of {run_dir} was not kept; choose "
                        f"one of: {_available(run_dir, sorted(kept))}")


def _model(task: SSLTask, cfg: RunConfig, weights: Weights) -> torch.nn.Module:
    # The ServerApp's seeding before its initial model: round 0 is the run's actual init.
    seed_global(cfg.seed)
    model = task.build_model(cfg)
    if weights.state is not None:
        try:
            model.load_state_dict(weights.state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise FineTuneError(f"{weights.source} does not fit the run's model "
                                f"(model={cfg.model!r}, ssl-method={cfg.ssl_method!r} in "
                                f"config.json): {first}") from None
    return model


def results_path(run_dir: str | Path, label: str, settings: FineTuneSettings) -> Path:
    """``RUN_DIR/finetune/<weights>-<mode>-<fraction>.json``, e.g. ``final-full-0.1.json``."""
    return (Path(run_dir) / FINETUNE_DIR
            / f"{label}-{settings.mode}-{settings.label_fraction:g}.json")


def _check_csv(path: Path) -> None:
    """Refuse, before any training, to append to a ``finetune.csv`` of other columns."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, newline="") as fh:
        header = next(csv.reader(fh), [])
    if tuple(header) != CSV_COLUMNS:
        raise FineTuneError(f"{path} has other columns than this fedssl writes "
                            f"({', '.join(header[:6])}, ...); rename or move it, and its rows "
                            "stay as they are")


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh, indent=2, allow_nan=True)
        fh.write("\n")
    os.replace(tmp, path)


def _summary(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation over the seeds of each weights' top-1 and top-5."""
    out: dict[str, dict[str, float]] = {}
    for label in dict.fromkeys(r["weights"] for r in results):
        mine = [r for r in results if r["weights"] == label]
        entry: dict[str, float] = {"seeds": len(mine)}
        for key in ("top1", "top5"):
            values = np.array([r[key] for r in mine], dtype=float)
            entry[key] = float(values.mean())
            entry[f"{key}-std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[label] = entry
    return out


def run_finetune(
    run_dir: str | Path,
    settings: FineTuneSettings,
    *,
    weights: str | int = "final",
    seeds: list[int] | tuple[int, ...] = (0,),
    baseline: bool = False,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the run's ``weights`` (and with ``baseline`` its random init) once per seed,
    writing each result to ``finetune/…json`` and ``finetune.csv`` as soon as it is known.

    Parameters
    ----------
    run_dir
        A run directory of ``task=image-ssl``, ``audio-ssl`` or ``video-ssl``.
    settings
        The fine-tuning recipe.
    weights
        ``"final"``, ``"best"`` or a round number (0: the random initialisation).
    seeds
        One fine-tune per seed (labelled subset, head init, order, augmentation).
    baseline
        Also fine-tune the run's random initialisation with the same recipe and seeds.
    device
        Where to train; ``None``: the GPU when one is visible, else the CPU.
    log
        Receives one progress line per epoch and per result (``None``: silent).

    Returns
    -------
    dict
        The JSON document written (``results``: one entry per weights and seed, ``mean``),
        plus ``path`` and ``csv``: where it is.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` has no ``config.json``.
    FineTuneError
        If the run is not of an SSL task, the weights are not there or do not fit, or
        ``finetune.csv`` has other columns. Nothing is written then.
    """
    from fedssl.clients import get_task
    from fedssl.clients.ssl_task import SSLTask

    run_dir = Path(run_dir)
    say = log or (lambda line: None)
    cfg = load_run_config(run_dir)
    task = get_task(cfg.task)
    if not isinstance(task, SSLTask) or task.modality not in SSL_MODALITIES:
        raise FineTuneError(f"{run_dir} is a task={cfg.task!r} run; fedssl finetune takes "
                            "runs of a self-supervised task (image-ssl, audio-ssl, video-ssl)")
    if not seeds:
        raise FineTuneError("give at least one seed")
    device = pick_device(device)
    chosen = load_weights(run_dir, weights, cfg)
    models = [(chosen, _model(task, cfg, chosen))]
    if baseline and chosen.label != "random-init":
        init = load_weights(run_dir, 0, cfg)
        models.append((init, _model(task, cfg, init)))
    csv_path, json_path = run_dir / FINETUNE_CSV, results_path(run_dir, chosen.label, settings)
    _check_csv(csv_path)

    noun = _NOUNS[task.modality]
    cuts = sorted(m for m in set(lr_milestones(settings.epochs)) if m < settings.epochs)
    schedule = f"x0.1 after epoch {', '.join(map(str, cuts))}" if cuts else "constant"
    say(f"{task.name} run (model {cfg.model}, ssl-method {cfg.ssl_method}, dataset "
        f"{cfg.dataset}); weights {chosen.label} (round {chosen.round}: {chosen.source}); "
        f"{settings.mode} fine-tuning on {settings.label_fraction:.0%} of the labels, "
        f"{settings.epochs} epochs, batch {settings.batch_size}, lr {settings.lr:g} ({schedule}), "
        f"weight decay {settings.decay:g}, on {device}")
    document: dict[str, Any] = {
        "run-dir": str(run_dir), "task": cfg.task, "model": cfg.model,
        "ssl-method": cfg.ssl_method, "dataset": cfg.dataset,
        "weights": {"label": chosen.label, "round": chosen.round, "source": chosen.source},
        "settings": asdict(settings) | {"weight-decay": settings.decay,
                                        "lr-milestones": lr_milestones(settings.epochs)},
        "device": str(device), "results": [], "mean": {},
    }
    for seed in seeds:
        for which, model in models:
            name = f"{which.label} (round {which.round}), seed {seed}"

            def on_epoch(epoch: int, rec: dict[str, float], name: str = name) -> None:
                say(f"{name}: epoch {epoch}/{settings.epochs}  loss {rec['train-loss']:.4f}  "
                    f"train-top1 {rec['train-top1']:.4f}  lr {rec['lr']:.2g}  "
                    f"({rec['epoch-time-s']:.1f}s)")

            result = finetune(task, cfg, model.backbone, settings, seed=seed, device=device,
                              on_epoch=on_epoch)
            clips = (f", {settings.test_clips} clips each" if task.modality == "video" else "")
            say(f"{name}: test top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f} on "
                f"{result['test-samples']} {noun}{clips}; trained on {result['train-samples']} "
                f"labelled {noun} ({result['wall-s']:.1f}s)")
            entry = {"weights": which.label, "round": which.round, "seed": seed, **result}
            document["results"].append(entry)
            document["mean"] = _summary(document["results"])
            document["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
            _write_json(json_path, document)
            _append_csv(csv_path, {
                "time": document["written"], "mode": settings.mode,
                "label-fraction": settings.label_fraction, "epochs": settings.epochs,
                "batch-size": settings.batch_size, "lr": settings.lr,
                "weight-decay": settings.decay,
                "test-clips": settings.test_clips if task.modality == "video" else "",
                "device": str(device), **{k: _plain(v) for k, v in entry.items()}})
    return document | {"path": json_path, "csv": csv_path}


def _plain(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value
