"""fedssl select-best on a damaged or mismatched run directory: exit 2, the file and the
problem named, no traceback, nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from fedssl.cli import main
from fedssl.clients import get_task
from fedssl.config import RunConfig
from fedssl.tracking import save_round_model


@pytest.fixture
def run_dir(tmp_path):
    cfg = RunConfig(eval_max_samples=64)
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_run_config()))
    torch.manual_seed(0)
    model = get_task(cfg.task).build_model(cfg)
    for rnd in (1, 2):
        save_round_model(tmp_path, rnd, model.state_dict())
    return tmp_path


def _refused(capsys, run_dir, *extra, fragments):
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["select-best", str(run_dir), "-q", *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no selection written


def test_a_corrupt_config_json_is_named(run_dir, capsys):
    (run_dir / "config.json").write_text("{not json")
    _refused(capsys, run_dir, fragments=["config.json is unreadable"])


def test_a_truncated_round_file_is_named(run_dir, capsys):
    path = run_dir / "rounds" / "round-0002.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    _refused(capsys, run_dir, fragments=[str(path), "unreadable"])


def test_round_files_of_another_network_are_named(run_dir, capsys):
    stored = json.loads((run_dir / "config.json").read_text()) | {"model": "resnet18"}
    (run_dir / "config.json").write_text(json.dumps(stored))
    _refused(capsys, run_dir, fragments=["round-0001.safetensors does not fit the run's model",
                                         "model='resnet18'"])


def test_an_unknown_device_is_refused(run_dir, capsys):
    _refused(capsys, run_dir, "--device", "banana", fragments=["--device 'banana'", "cpu"])
