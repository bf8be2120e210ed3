"""W&B dashboards: mode resolution, what WandbSink logs, and whole runs in offline mode.

Everything runs offline under tmp directories (no network, no login) and is read back with
``read_offline_run``, i.e. from the file ``wandb sync`` would upload.
"""

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flower_fakes import InProcessGrid, set_task_identity
from matplotlib.figure import Figure

from fedssl.config import RunConfig, load_defaults
from fedssl.flwr_app.server_app import run_federated
from fedssl.tracking import load_checkpoint
from fedssl.tracking.wandb_offline import find_offline_runs, read_offline_run, read_records
from fedssl.tracking.wandb_sink import WandbSink, has_stored_api_key, resolve_wandb_mode

API_KEY = "k" * 40


@pytest.fixture(scope="module", autouse=True)
def offline_wandb(tmp_path_factory):
    """Keep wandb quiet, logged out and inside tmp (its caches and artifact staging too)."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR",
                     "WANDB_ARTIFACT_DIR"):
            mp.setenv(name, str(home / name.lower()))
        mp.setenv("NETRC", str(home / "no-netrc"))
        for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_RUN_ID",
                     "WANDB_RESUME", "WANDB_IDENTITY_TOKEN_FILE"):
            mp.delenv(name, raising=False)
        yield


def _refuse(environ):
    raise AssertionError("the stored-key lookup should not run")


# ---------------------------------------------------------------------------------- (a) mode
@pytest.mark.parametrize("mode", ["offline", "online", "disabled"])
def test_explicit_modes_are_kept_without_looking_for_a_key(mode):
    assert resolve_wandb_mode(mode, {"WANDB_API_KEY": API_KEY}, stored_key=_refuse) == mode


def test_auto_is_online_with_an_api_key_in_the_environment():
    assert resolve_wandb_mode("auto", {"WANDB_API_KEY": API_KEY}, stored_key=_refuse) == "online"


@pytest.mark.parametrize(("environ", "stored", "expected"), [
    ({}, False, "offline"),
    ({}, True, "online"),
    ({"WANDB_API_KEY": "  "}, False, "offline"),  # blank is not a key
    ({"WANDB_API_KEY": ""}, True, "online"),
])
def test_auto_without_environment_key_asks_for_a_stored_one(environ, stored, expected):
    asked = []
    mode = resolve_wandb_mode("auto", environ,
                              stored_key=lambda env: asked.append(env) or stored)
    assert mode == expected and asked == [environ]


def test_stored_key_is_read_from_netrc_with_wandbs_reader(tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert not has_stored_api_key({})  # no file
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {API_KEY}\n")
    netrc.chmod(0o600)
    assert has_stored_api_key({})
    assert resolve_wandb_mode("auto", {}) == "online"
    # A key for another server does not count for this one.
    assert not has_stored_api_key({"WANDB_BASE_URL": "https://wandb.example.org"})
    netrc.write_text("machine api.wandb.ai\n  login user\n  password short\n")
    assert not has_stored_api_key({})  # malformed: stays offline instead of failing
    assert resolve_wandb_mode("auto", {}) == "offline"


def test_disabled_never_imports_wandb(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fedssl.tracking.wandb_sink import WandbSink\n"
        "s = WandbSink(mode='disabled', project='p', name='n', group='g', tags=[], config={},\n"
        f"              run_dir=Path({str(tmp_path)!r}))\n"
        "s.add_client_metrics(1, 'train', 0, {'train-loss': 1.0})\n"
        "s.log_round(1, {'train-loss': 1.0}, {})\n"
        "s.log_plots(Path('.')); s.log_summary({'a': 1}); s.finish()\n"
        "assert s.run_id is None\n"
        "print(sorted(m for m in sys.modules if m == 'wandb' or m.startswith('wandb.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "wandb").exists()


def test_auto_without_a_key_runs_offline_and_says_why(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="flwr")
    sink = WandbSink(mode="auto", project="p", name="n", group="", tags=[], config={},
                     run_dir=tmp_path)
    assert sink.mode == "offline" and sink.run is not None
    sink.finish()
    assert "W&B offline run (wandb-mode=auto: no API key" in caplog.text
    assert f"wandb sync {find_offline_runs(tmp_path)[0]}" in caplog.text


def test_failing_init_leaves_wandb_off_with_one_warning(tmp_path, monkeypatch, caplog):
    import wandb

    def refuse(**kwargs):
        raise wandb.errors.CommError("no network")

    monkeypatch.setattr(wandb, "init", refuse)
    sink = WandbSink(mode="online", project="p", name="n", group="", tags=[], config={},
                     run_dir=tmp_path)
    sink.add_client_metrics(1, "train", 0, {"train-loss": 1.0})
    sink.log_round(1, {"train-loss": 1.0}, {})
    sink.log_summary({"a": 1})
    sink.finish()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sink.run is None and sink.run_id is None
    assert len(warnings) == 1 and "W&B init failed (CommError: no network)" in warnings[0]


# ---------------------------------------------------------------------------------- helpers
def _png(path: Path) -> Path:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(path)
    return path


def _table(run, entry: dict) -> pd.DataFrame:
    """A logged table, read from the run's files."""
    assert entry["path"] in run.files
    content = json.loads((run.files_dir / entry["path"]).read_text())
    return pd.DataFrame(content["data"], columns=content["columns"])


def _client_rows(run, key: str = "clients/table") -> pd.DataFrame:
    """All increments of an incremental client table, in round order."""
    parts = [_table(run, entry) for entry in run.values(key).values()]
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------- (b) sink
def test_sink_logs_every_dashboard_element(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("partitions", "metrics", "ldawa-delta"):
        _png(run_dir / f"{name}.png")
    histograms = pd.DataFrame([[5, 0, 1], [2, 7, 0]], columns=[0, 1, 2])
    caplog.set_level(logging.INFO, logger="flwr")
    sink = WandbSink(mode="offline", project="fedssl-test", name="sink-run", group="exp-a",
                     tags=["t1"], config={"strategy": "ldawa", "lr": 0.1}, run_dir=run_dir,
                     run_id="resumed-id-1", job_type="ldawa")
    assert sink.mode == "offline" and sink.run_id == "resumed-id-1"
    sync = [r.getMessage() for r in caplog.records if "wandb sync" in r.getMessage()]
    assert len(sync) == 1 and sync[0].endswith(
        f"upload it with: wandb sync --id resumed-id-1 {run_dir}/wandb/offline-run-*-resumed-id-1")

    sink.log_partitions(histograms, run_dir / "partitions.png")
    losses = {(1, 0): 2.0, (1, 1): 4.0, (2, 0): 1.0, (2, 1): 1.5}
    for rnd in (1, 2):
        for pid in (0, 1):
            sink.add_client_metrics(rnd, "train", pid, {
                "train-loss": losses[rnd, pid], "num-examples": np.int64(10 * (pid + 1)),
                "partition-id": pid, "per-layer": [1.0, 2.0]})
        train = {"train-loss": 3.0 / rnd, "failures": 0, "valid-replies": 2,
                 "ldawa-delta/conv.weight": 0.9 + rnd / 100, "ldawa-delta-mean": 0.95}
        sink.log_round(rnd, train, {"knn-accuracy": 0.25 * rnd} if rnd == 2 else {})
    sink.log_plots(run_dir)
    sink.log_summary({"knn-accuracy": 0.5, "run-name": "sink-run", "rounds": 2})
    sink.finish()
    assert sink.run is None

    run = read_offline_run(run_dir)
    assert (run.run_id, run.group, run.job_type, run.name, run.project, run.tags) == (
        "resumed-id-1", "exp-a", "ldawa", "sink-run", "fedssl-test", ["t1"])
    assert run.config == {"strategy": "ldawa", "lr": 0.1}
    assert run.exit_code == 0
    assert [row["_step"] for row in run.history] == [1, 2]
    # Server metrics, one section each; the per-layer family keeps its own section.
    assert run.values("train/train-loss") == {1: 3.0, 2: 1.5}
    assert run.values("train/failures") == {1: 0, 2: 0}
    assert run.values("train/ldawa-delta-mean") == {1: 0.95, 2: 0.95}
    assert run.values("ldawa-delta/conv.weight") == {1: 0.91, 2: 0.92}
    assert "train/ldawa-delta/conv.weight" not in run.frame().columns
    assert run.values("central/knn-accuracy") == {2: 0.5}
    # Client spread per round, without the identity metric or the list.
    assert run.values("clients/train-loss-mean") == {1: 3.0, 2: 1.25}
    assert run.values("clients/train-loss-min") == {1: 2.0, 2: 1.0}
    assert run.values("clients/train-loss-max") == {1: 4.0, 2: 1.5}
    assert run.values("clients/num-examples-mean") == {1: 15, 2: 15}
    assert not any("partition-id" in k or "per-layer" in k for k in run.frame().columns)
    # The client table: one increment per round, together every reply once.
    tables = run.values("clients/table")
    assert sorted(tables) == [1, 2]
    assert all(t["_type"] == "incremental-table-file" for t in tables.values())
    rows = _client_rows(run)
    assert list(rows.columns) == ["round", "partition", "train-loss", "num-examples"]
    assert {(r, p): loss for r, p, loss in rows[["round", "partition", "train-loss"]].itertuples(
        index=False)} == losses
    assert list(rows["num-examples"]) == [10, 20, 10, 20]
    # The partitions: image and class counts, with the first round.
    image = run.values("partitions/histogram")
    assert list(image) == [1] and image[1]["_type"] == "image-file"
    assert image[1]["path"] in run.files and (run.files_dir / image[1]["path"]).is_file()
    counts = _table(run, run.values("partitions/class-counts")[1])
    assert counts.to_dict("list") == {"partition": [0, 1], "0": [5, 2], "1": [0, 7],
                                      "2": [1, 0], "total": [6, 9]}
    # Plots at the last round's step; partitions.png is not logged twice.
    last = run.history[-1]
    assert {k for k in last if k.startswith("plots/")} == {"plots/metrics", "plots/ldawa-delta"}
    assert all((run.files_dir / last[k]["path"]).is_file() for k in last if k.startswith("plots/"))
    assert {"knn-accuracy": 0.5, "run-name": "sink-run", "rounds": 2}.items() <= (
        run.summary.items())


def test_reader_refuses_damaged_files(tmp_path):
    sink = WandbSink(mode="offline", project="p", name="n", group="", tags=[], config={},
                     run_dir=tmp_path)
    sink.log_round(1, {"train-loss": 1.0}, {})
    sink.finish()
    (wandb_file,) = find_offline_runs(tmp_path)[0].glob("run-*.wandb")
    assert len(read_records(wandb_file)) > 3
    data = bytearray(wandb_file.read_bytes())
    data[40] ^= 0xFF
    wandb_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        read_records(wandb_file)
    wandb_file.write_bytes(b"not a wandb file")
    with pytest.raises(ValueError, match="not a W&B run file"):
        read_records(wandb_file)


# ---------------------------------------------------------------------------------- runs
def _tiny_config(run_dir: Path, **overrides) -> RunConfig:
    return RunConfig.from_run_config(load_defaults() | {
        "num-server-rounds": 2, "max-local-steps": 1, "batch-size": 16, "image-size": 16,
        "eval-every": 1, "eval-max-samples": 100, "linear-probe": False,
        "keep-round-models": False, "partitioner": "iid", "min-train-nodes": 2,
        "min-available-nodes": 2, "output-dir": str(run_dir), "run-name": run_dir.name,
        "wandb-mode": "offline", "wandb-project": "fedssl-test", "seed": 1,
    } | overrides)


def _run(cfg: RunConfig) -> dict:
    set_task_identity()
    return run_federated(InProcessGrid(cfg, 2), cfg)


def test_federated_run_fills_the_dashboards_and_resumes_the_same_wandb_run(tmp_path, caplog):
    run_dir = tmp_path / "ldawa-run"
    cfg = _tiny_config(run_dir, **{"strategy": "ldawa", "ldawa-warmup-rounds": 0,
                                   "wandb-group": "ldawa-vs-fedavg", "wandb-tags": "a,b"})
    caplog.set_level(logging.INFO, logger="flwr")
    summary = _run(cfg)
    run = read_offline_run(run_dir)
    assert f"upload it with: wandb sync {run.path}" in caplog.text
    metrics = pd.read_csv(run_dir / "metrics.csv")

    assert (run.group, run.job_type, run.name, run.tags) == (
        "ldawa-vs-fedavg", "ldawa", "ldawa-run", ["a", "b"])
    assert run.config == json.loads(json.dumps(cfg.to_run_config()))
    assert run.exit_code == 0
    assert [row["_step"] for row in run.history] == [1, 2]
    server = metrics[metrics["source"] == "server"]
    layers = [m for m in server["metric"].unique() if m.startswith("ldawa-delta/")]
    assert layers, "ldawa reported no per-layer δ"
    for (rnd, phase, metric), value in server.set_index(
            ["round", "phase", "metric"])["value"].items():
        if phase == "final":
            continue
        key = metric if "/" in metric else f"{phase}/{metric}"
        assert math.isclose(run.values(key)[rnd], value, rel_tol=1e-9), key
    assert sorted(run.values("central/knn-accuracy")) == [1, 2]
    assert sorted(run.values(layers[0])) == [1, 2]
    clients = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-loss")]
    for rnd, group in clients.groupby("round"):
        assert math.isclose(run.values("clients/train-loss-mean")[rnd], group["value"].mean())
        assert math.isclose(run.values("clients/train-loss-max")[rnd], group["value"].max())
    rows = _client_rows(run)
    assert sorted(zip(rows["round"], rows["partition"], strict=True)) == sorted(
        zip(clients["round"], clients["partition"], strict=True))
    assert np.allclose(rows.sort_values(["round", "partition"])["train-loss"],
                       clients.sort_values(["round", "partition"])["value"])
    partitions = pd.read_csv(run_dir / "partitions.csv")
    counts = _table(run, run.values("partitions/class-counts")[1])
    assert counts.drop(columns="total").to_numpy().tolist() == partitions.to_numpy().tolist()
    assert run.values("partitions/histogram")[1]["path"] in run.files
    plots = {k for k in run.history[-1] if k.startswith("plots/")}
    assert plots == {"plots/metrics", "plots/ldawa-delta"}
    written = json.loads((run_dir / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary, default=str))
    for key, value in written.items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert run.summary[key] == expected, key
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint["wandb-id"] == run.run_id

    # Resume for a third round: the same W&B run id, continuing at step 3.
    _run(_tiny_config(run_dir, **{"strategy": "ldawa", "ldawa-warmup-rounds": 0,
                                  "num-server-rounds": 3, "resume-from": str(run_dir)}))
    first, second = find_offline_runs(run_dir)
    resumed = read_offline_run(second)
    assert first != second and resumed.run_id == run.run_id
    assert [row["_step"] for row in resumed.history] == [3]
    assert resumed.summary["rounds"] == 3 and resumed.summary["resumed-after-round"] == 2


def test_wandb_failure_switches_wandb_off_and_the_run_completes(tmp_path, monkeypatch, caplog):
    import wandb

    calls = []

    def broken_log(self, *args, **kwargs):
        calls.append(kwargs.get("step"))
        raise RuntimeError("W&B backend went away")

    monkeypatch.setattr(wandb.Run, "log", broken_log)
    caplog.set_level(logging.INFO, logger="flwr")
    run_dir = tmp_path / "broken-wandb"
    summary = _run(_tiny_config(run_dir, strategy="fedavg"))

    assert summary["rounds"] == 2 and (run_dir / "summary.json").is_file()
    assert calls == [1]  # the first failure switched W&B off: no later call reached wandb
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "flwr" and r.levelno == logging.WARNING and "W&B" in r.getMessage()]
    assert len(warnings) == 1
    assert "log_round failed" in warnings[0] and "W&B backend went away" in warnings[0]
    run = read_offline_run(run_dir)
    assert run.exit_code == 1 and run.history == [] and "rounds" not in run.summary


def test_experiment_runs_share_the_experiment_as_wandb_group(tmp_path, monkeypatch):
    """The experiment runner puts every variant in one W&B group (the experiment's name)."""
    import fedssl.experiments.runner
    from fedssl.experiments.runner import run_experiment
    from fedssl.experiments.spec import ExperimentSpec
    from fedssl.launch import Federation

    resolved = []
    original = fedssl.experiments.runner.resolve_config

    def spy(*args, **kwargs):
        resolved.append(original(*args, **kwargs))
        return resolved[-1]

    monkeypatch.setattr(fedssl.experiments.runner, "resolve_config", spy)
    spec = ExperimentSpec(name="ldawa_vs_fedavg", grid={"strategy": ["fedavg", "ldawa"]},
                          seeds=(0, 1))
    assert run_experiment(spec, {"wandb-group": "ignored"}, federation=Federation(),
                          runs_dir=tmp_path, dry_run=True, quiet=True) == 0
    assert len(resolved) == 4
    assert {cfg.wandb_group for cfg in resolved} == {"ldawa_vs_fedavg"}
    assert sorted(cfg.strategy for cfg in resolved) == ["fedavg", "fedavg", "ldawa", "ldawa"]
