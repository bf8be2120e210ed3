"""No silent loss or mixing of results: a run claims its own directory, a run name is a plain
name, a resumed run keeps the settings that define it, and federation settings that cannot
work are refused before anything starts (through the real CLI where the CLI is the point)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from flower_fakes import InProcessGrid, set_task_identity

from fedssl.callbacks import rng_state
from fedssl.cli import main
from fedssl.config import ConfigError, RunConfig, load_defaults
from fedssl.flwr_app.server_app import run_federated
from fedssl.launch import claim_run_dir
from fedssl.launch.overrides import resolve_config
from fedssl.tracking import save_checkpoint


def _refused(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _earlier_run(path, **config) -> dict:
    """A run directory as a finished run leaves it (config.json, checkpoint, metrics)."""
    path.mkdir(parents=True)
    stored = load_defaults() | {"output-dir": str(path)} | config
    (path / "config.json").write_text(json.dumps(stored | {"run-dir": str(path)}))
    (path / "metrics.csv").write_text("round,phase,source,partition,metric,value\n")
    save_checkpoint(path, {"round": 1, "arrays": {}, "strategy-state": {}, "rng": rng_state()})
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def test_a_run_name_must_be_a_plain_name(tmp_path, capsys):
    _refused(capsys, ["run", "--runs-dir", str(tmp_path / "runs"), "run-name=../../escape"],
             "run-name='../../escape' is not a plain name")
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escape").exists()


def test_an_existing_run_directory_is_refused_and_left_as_it_was(tmp_path, capsys):
    before = _earlier_run(tmp_path / "runs" / "same")
    _refused(capsys, ["run", "--runs-dir", str(tmp_path / "runs"), "run-name=same"],
             "already holds a run", "config.json", "--overwrite")
    assert {p.name: p.read_bytes() for p in (tmp_path / "runs" / "same").iterdir()
            if p.is_file()} == before
    # --overwrite clears only run directories.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    _refused(capsys, ["run", "--overwrite", f"output-dir={tmp_path / 'mine'}"],
             "is not a run directory")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_a_claim_is_exclusive_and_overwrite_clears_a_run_directory(tmp_path):
    cfg = RunConfig(output_dir=str(tmp_path / "run"))
    claim_run_dir(cfg)
    with pytest.raises(ConfigError, match="just claimed by another run"):
        claim_run_dir(cfg)  # a second command at the same moment, before any file is written
    _earlier_run(tmp_path / "old")
    path = claim_run_dir(RunConfig(output_dir=str(tmp_path / "old")), overwrite=True)
    assert [p.name for p in path.iterdir()] == [".fedssl-claim"]
    with pytest.raises(ConfigError, match="cannot be written"):
        claim_run_dir(RunConfig(output_dir="/proc/fedssl-run"))


def test_default_run_names_differ_for_runs_started_in_the_same_second(tmp_path):
    names = {resolve_config({}, {}, default_root=tmp_path).run_name for _ in range(20)}
    assert len(names) == 20


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--client-cpus", "0"], "--client-cpus=0"),
    (["--client-cpus", "-1"], "--client-cpus=-1"),
    (["--client-cpus", "1.5"], "--client-cpus=1.5"),
    (["--client-gpus", "-1"], "--client-gpus=-1"),
    (["--num-supernodes", "0"], "--num-supernodes=0"),
    (["--num-supernodes", "3", "min-available-nodes=5"], "min-available-nodes=5 is more than"),
])
def test_federation_settings_that_cannot_work_are_refused_up_front(tmp_path, capsys, argv,
                                                                   fragment):
    _refused(capsys, ["run", "--runs-dir", str(tmp_path), *argv], fragment)
    assert not any(tmp_path.iterdir())  # no run directory was made


def test_a_gpu_share_without_a_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _refused(capsys, ["run", "--runs-dir", str(tmp_path), "--client-gpus", "1"],
             "--client-gpus=1, but this machine has no GPU")


def test_relative_paths_are_taken_from_where_the_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config({}, {"data-dir": "data", "output-dir": "out"}, default_root=tmp_path)
    assert cfg.data_dir == str(tmp_path / "data") and cfg.output_dir == str(tmp_path / "out")


def test_resume_takes_the_runs_own_settings_and_refuses_changes_to_them(tmp_path, capsys):
    run_dir = tmp_path / "ldawa-run"
    before = _earlier_run(run_dir, strategy="ldawa", lr=0.05, seed=3)
    cfg = resolve_config({}, {"resume-from": str(run_dir), "num-server-rounds": 4})
    assert (cfg.strategy, cfg.lr, cfg.seed, cfg.output_dir) == ("ldawa", 0.05, 3, str(run_dir))
    err = _refused(capsys, ["run", f"resume-from={run_dir}", "num-server-rounds=4", "lr=0.3",
                            "model=resnet18"], "lr: was 0.05, now 0.3", "model: was")
    assert "num-server-rounds" not in err.split("differ:")[1]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_the_server_refuses_to_resume_over_another_client_count(tmp_path):
    overrides = {"num-server-rounds": 1, "max-local-steps": 1, "batch-size": 16,
                 "eval-every": 0, "linear-probe": False, "eval-max-samples": 100,
                 "partitioner": "iid", "wandb-mode": "disabled", "keep-round-models": False,
                 "output-dir": str(tmp_path)}
    cfg = RunConfig.from_run_config(load_defaults() | overrides)
    set_task_identity()
    run_federated(InProcessGrid(cfg, 3), cfg)
    partitions = (tmp_path / "partitions.csv").read_bytes()
    resumed = cfg.replace(num_server_rounds=2, resume_from=str(tmp_path))
    with pytest.raises(ConfigError, match="had 3 partitions, this federation has 2 nodes"):
        run_federated(InProcessGrid(resumed, 2), resumed)
    assert (tmp_path / "partitions.csv").read_bytes() == partitions
    assert len(pd.read_csv(tmp_path / "metrics.csv")) > 0


def test_an_output_dir_that_cannot_be_written_is_refused_up_front(tmp_path, capsys):
    _refused(capsys, ["run", "output-dir=/proc/fedssl-run"], "/proc/fedssl-run",
             "cannot be written")
