"""Per-round global models and ``fedssl select-best`` (FASSL: pick the best round)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from fedssl.cli import main
from fedssl.experiments.selection import (
    SelectionError,
    default_metric,
    score_rounds,
    select_best,
    write_selection,
)
from fedssl.tracking import (
    ROUND_CHECKPOINT_DIR,
    list_round_models,
    load_round_model,
    load_tensors_metadata,
    save_round_model,
)


def frame(rounds: list[int], **metrics: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"round": rounds, **metrics})


# ---------------------------------------------------------------------------- select_best
def test_select_best_max_and_min():
    scores = frame([0, 1, 2, 3], acc=[0.1, 0.5, 0.7, 0.6], loss=[3.0, 1.0, 2.0, 1.5])
    assert select_best(scores, "acc") == 2
    assert select_best(scores, "acc", mode="max") == 2
    assert select_best(scores, "loss", mode="min") == 1


def test_select_best_tie_goes_to_the_earliest_round_whatever_the_row_order():
    scores = frame([4, 2, 0, 3], acc=[0.8, 0.8, 0.1, 0.8])
    assert select_best(scores, "acc") == 2
    assert select_best(frame([3, 1, 2], loss=[0.5, 0.5, 0.9]), "loss", mode="min") == 1


def test_select_best_skips_nan_scores():
    assert select_best(frame([0, 1, 2], acc=[0.1, float("nan"), 0.3]), "acc") == 2
    with pytest.raises(SelectionError, match="no round"):
        select_best(frame([1], acc=[float("nan")]), "acc")


def test_select_best_refuses_unknown_metric_and_mode():
    scores = frame([0, 1], acc=[0.1, 0.2], recall=[0.3, 0.4])
    with pytest.raises(ValueError, match=r"'nope'.*available metrics: acc, recall"):
        select_best(scores, "nope")
    with pytest.raises(ValueError, match="choose one of: max, min"):
        select_best(scores, "acc", mode="best")
    assert default_metric(scores) == "acc"


# ---------------------------------------------------------------------------- round store
def test_round_models_round_trip(tmp_path):
    states = {rnd: {"w": torch.randn(3, 2), "n": torch.tensor(rnd)} for rnd in (10, 2, 7)}
    for rnd, state in states.items():
        path = save_round_model(tmp_path, rnd, state)
        assert path.name == f"round-{rnd:04d}.safetensors"
    (tmp_path / ROUND_CHECKPOINT_DIR / ".round-abc.tmp").write_bytes(b"half")  # ignored
    listed = list_round_models(tmp_path)
    assert [rnd for rnd, _ in listed] == [2, 7, 10]
    for rnd, path in listed:
        loaded = load_round_model(path)
        assert loaded.keys() == states[rnd].keys()
        assert all(torch.equal(loaded[k], states[rnd][k]) for k in loaded)
    # A resumed run that repeats a round overwrites its file.
    save_round_model(tmp_path, 7, {"w": torch.zeros(3, 2), "n": torch.tensor(0)})
    assert torch.equal(load_round_model(listed[1][1])["w"], torch.zeros(3, 2))
    assert list_round_models(tmp_path / "elsewhere") == []


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A run directory as a 2-round image-ssl run with keep-round-models=true leaves it, and
    the run's initial state_dict."""
    from fedssl.clients import get_task
    from fedssl.config import RunConfig

    run_dir = tmp_path_factory.mktemp("run")
    cfg = RunConfig(task="image-ssl", model="small-cnn", eval_max_samples=64)
    (run_dir / "config.json").write_text(
        json.dumps(cfg.to_run_config() | {"run-dir": str(run_dir)}, default=str))
    torch.manual_seed(cfg.seed)
    model = get_task(cfg.task).build_model(cfg)
    generator = torch.Generator().manual_seed(1)
    for rnd in (1, 2):
        state = {k: v + 0.05 * rnd * torch.randn(v.shape, generator=generator)
                 if v.is_floating_point() else v.clone()
                 for k, v in model.state_dict().items()}
        save_round_model(run_dir, rnd, state)
    return run_dir, {k: v.clone() for k, v in model.state_dict().items()}


def fresh_model() -> torch.nn.Module:
    from fedssl.clients import get_task
    from fedssl.config import RunConfig

    return get_task("image-ssl").build_model(RunConfig(eval_max_samples=64))


def test_score_rounds_and_write_selection(fake_run):
    run_dir, _ = fake_run
    scores = score_rounds(run_dir, metric="val-knn-accuracy", progress=False, device="cpu")
    assert scores["round"].tolist() == [0, 1, 2]
    assert list(scores.columns) == ["round", "val-knn-accuracy"]
    assert scores["val-knn-accuracy"].between(0, 1).all()
    best = select_best(scores, "val-knn-accuracy")
    paths = write_selection(run_dir, scores, "val-knn-accuracy", best)

    table = pd.read_csv(paths["csv"])
    assert paths["csv"].name == "model-selection.csv"
    assert table["round"].tolist() == [0, 1, 2]
    assert "val-knn-accuracy" in table.columns
    assert paths["plot"].name == "model-selection.png" and paths["plot"].stat().st_size > 0
    saved = load_tensors_metadata(paths["model"])
    assert paths["model"].name == "best-model.safetensors"
    assert saved["round"] == best and saved["metric"] == "val-knn-accuracy"
    assert saved["score"] == pytest.approx(
        float(scores.loc[scores["round"] == best, "val-knn-accuracy"].iloc[0]))
    fresh_model().load_state_dict(load_round_model(paths["model"]))  # strict: all keys fit


def test_round_zero_is_the_seeded_initialisation(fake_run):
    # Round 0 is rebuilt with the run's seed, so a selection won by round 0 writes the run's
    # initialisation as the best model.
    run_dir, initial = fake_run
    scores = score_rounds(run_dir, rounds=[0], progress=False, device="cpu")
    assert scores["round"].tolist() == [0]
    paths = write_selection(run_dir, scores, "val-knn-accuracy", 0)
    saved = load_round_model(paths["model"])
    assert saved.keys() == initial.keys()
    assert all(torch.equal(saved[k], v) for k, v in initial.items())


def test_score_rounds_subsets_and_errors(fake_run):
    run_dir, _ = fake_run
    assert score_rounds(run_dir, every=2, progress=False)["round"].tolist() == [0, 2]
    with pytest.raises(SelectionError, match=r"\[5\] were not kept; kept rounds: 1-2"):
        score_rounds(run_dir, rounds=[1, 5], progress=False)
    with pytest.raises(SelectionError, match="rounds or every"):
        score_rounds(run_dir, rounds=[1], every=2, progress=False)
    with pytest.raises(SelectionError, match="available metrics: val-knn-accuracy"):
        score_rounds(run_dir, metric="accuracy", progress=False)


def test_cli_select_best(fake_run, capsys):
    run_dir, _ = fake_run
    assert main(["select-best", str(run_dir), "--rounds", "1,2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "val-knn-accuracy" in out and "best round" in out and "best-model.safetensors" in out
    assert pd.read_csv(run_dir / "model-selection.csv")["round"].tolist() == [0, 1, 2]


def test_cli_select_best_refuses_unknown_metric(fake_run, capsys):
    run_dir, _ = fake_run
    assert main(["select-best", str(run_dir), "--metric", "nope", "-q"]) == 2
    assert "available metrics: val-knn-accuracy" in capsys.readouterr().err


def test_run_without_kept_rounds_or_config_is_refused(fake_run, tmp_path, capsys):
    run_dir, _ = fake_run
    bare = tmp_path / "bare"
    bare.mkdir()
    assert main(["select-best", str(bare), "-q"]) == 2
    assert "no config.json" in capsys.readouterr().err
    (bare / "config.json").write_text((run_dir / "config.json").read_text())
    assert main(["select-best", str(bare), "-q"]) == 2
    assert "keep-round-models=true" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="keep-round-models"):
        score_rounds(bare, progress=False)
