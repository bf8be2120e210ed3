"""End to end through real Flower processes: `fedssl run` -> private SuperLink -> Ray clients.

Each run is tiny (few local steps, small eval subsets) so that the whole file stays in the
low minutes on 2 CPU cores; what is checked is behaviour, not accuracy.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_runs import TINY, TINY_TRAINING

from fedssl.cli import main
from fedssl.tracking import load_checkpoint, load_tensors, load_tensors_metadata

pytestmark = pytest.mark.e2e



def fedssl_run(tmp_path: Path, name: str, *overrides: str, supernodes: int = 3) -> Path:
    run_dir = tmp_path / name
    code = main(["run", "-q", "--num-supernodes", str(supernodes), *TINY,
                 f"output-dir={run_dir}", *overrides])
    assert code == 0, f"fedssl run {name} exited {code}"
    return run_dir


def final_state(run_dir: Path) -> dict:
    return load_tensors(run_dir / "final_model.safetensors")


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """Two rounds of FedAvgM (server momentum: a strategy with state to checkpoint)."""
    return fedssl_run(tmp_path_factory.mktemp("ref"), "ref", "strategy=fedavgm", "seed=3")


def test_run_writes_results(reference_run):
    for name in ("config.json", "metrics.csv", "summary.json", "partitions.csv",
                 "partitions.png", "metrics.png", "checkpoint.json", "final_model.safetensors"):
        assert (reference_run / name).is_file(), name
    metrics = pd.read_csv(reference_run / "metrics.csv")
    assert set(metrics.columns) == {"round", "phase", "source", "partition", "metric", "value"}
    client_loss = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-loss")]
    assert sorted(client_loss["round"].unique()) == [1, 2]
    assert sorted(client_loss["partition"].unique()) == [0, 1, 2]
    knn = metrics[(metrics["phase"] == "central") & (metrics["metric"] == "knn-accuracy")]
    assert list(knn["round"]) == [1, 2] and knn["value"].between(0, 1).all()
    summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["num-partitions"] == 3
    assert 0.0 <= summary["knn-accuracy"] <= 1.0
    partitions = pd.read_csv(reference_run / "partitions.csv", index_col="partition")
    assert partitions.to_numpy().sum() == 5748  # every training image, once (iid)


def test_same_seed_gives_identical_global_model(tmp_path, reference_run):
    again = fedssl_run(tmp_path, "again", "strategy=fedavgm", "seed=3")
    assert_same_state(final_state(reference_run), final_state(again))


def test_different_seed_gives_different_model(tmp_path, reference_run):
    other = fedssl_run(tmp_path, "other", "strategy=fedavgm", "seed=4")
    a, b = final_state(reference_run), final_state(other)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_a_client_that_raises_is_left_out_and_run_continues(tmp_path):
    # Replies with corrupt arrays (fault-kind nan, shape, keys) take the same path in the
    # ServerApp; they are tested in process in test_server_in_process.py.
    run_dir = fedssl_run(tmp_path, "raise", "fault-partition=1", "fault-kind=raise",
                         "num-server-rounds=1", "eval-every=0")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    failures = metrics[(metrics["source"] == "server") & (metrics["metric"] == "failures")]
    assert failures["value"].tolist() == [1]
    clients = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-loss")]
    assert sorted(clients["partition"]) == [0, 2]
    assert json.loads((run_dir / "summary.json").read_text())["total-failures"] == 1


def test_too_few_replies_keep_the_previous_model(tmp_path):
    run_dir = fedssl_run(tmp_path, "few", "fault-partition=0", "min-train-nodes=3",
                         "num-server-rounds=1", "eval-every=0", "seed=5")
    state = load_checkpoint(run_dir)["arrays"]
    from fedssl.clients import get_task
    from fedssl.config import RunConfig, load_defaults

    torch.manual_seed(5)
    cfg = RunConfig.from_run_config(load_defaults())
    initial = get_task("image-ssl").build_model(cfg).state_dict()
    for key, value in initial.items():
        assert torch.equal(state[key], value), key


def test_unknown_strategy_fails_fast_before_any_process():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fedssl.cli", "run", "strategy=nosuch"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "strategy='nosuch'" in proc.stderr and "fedavg" in proc.stderr
    assert "fedyogi" in proc.stderr and "krum" in proc.stderr
    assert time.perf_counter() - start < 60
    assert "SuperLink" not in proc.stdout


def test_experiment_runs_every_variant_and_tabulates(tmp_path):
    spec = tmp_path / "exp.toml"
    spec.write_text(
        '[experiment]\nname = "tiny"\nseeds = [0]\nnum-supernodes = 3\n\n'
        '[base]\nnum-server-rounds = 1\nmax-local-steps = 1\nbatch-size = 32\n'
        'eval-max-samples = 200\nlinear-probe = false\nwandb-mode = "disabled"\n'
        'min-available-nodes = 3\n\n'
        '[grid]\nssl-method = ["simclr", "simsiam"]\n'
    )
    code = main(["experiment", "-q", str(spec), "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    (root,) = (tmp_path / "runs").iterdir()
    table = pd.read_csv(root / "results.csv")
    assert sorted(table["ssl-method"]) == ["simclr", "simsiam"]
    assert "knn-accuracy mean" in table.columns
    assert (root / "results.md").read_text().count("|") > 10
    assert (root / "final_accuracy.png").is_file()
    runs = pd.read_csv(root / "runs.csv")
    assert (runs["status"] == "finished:completed").all()
    # The report can be rewritten from runs.csv alone, without running anything.
    (root / "results.md").unlink()
    assert main(["experiment", str(spec), "--report", str(root)]) == 0
    assert (root / "results.md").read_text().count("simsiam") == 1
    assert (root / "knn_accuracy.png").is_file()


# ---------------------------------------------------------------- L-DAWA and FedVSSL
LDAWA_YOGI = ["strategy=ldawa", "server-optimizer=fedyogi", "ldawa-warmup-rounds=1", "seed=6",
              "eval-every=0"]


def test_ldawa_with_fedyogi_logs_layer_deltas_and_resumes_exactly(tmp_path):
    reference = fedssl_run(tmp_path, "ldawa", *LDAWA_YOGI, "num-server-rounds=2")
    metrics = pd.read_csv(reference / "metrics.csv")
    server = metrics[metrics["source"] == "server"]
    mean = server[server["metric"] == "ldawa-delta-mean"]
    assert list(mean["round"]) == [2]  # round 1 is the warm-up (FedYogi alone)
    assert mean["value"].between(-1, 1).all()
    layers = {m.split("/", 1)[1] for m in server["metric"] if m.startswith("ldawa-delta/")}
    state = final_state(reference)
    assert layers == {k for k, v in state.items() if v.ndim > 0}
    assert (reference / "ldawa-delta.png").is_file()
    # Resume after round 1: FedYogi's moments (made in the warm-up round, held inside L-DAWA),
    # the RNG states and the partition order must all come back for the same model.
    first = fedssl_run(tmp_path, "ldawa-resumed", *LDAWA_YOGI, "num-server-rounds=1")
    assert json.loads((first / "summary.json").read_text())["rounds"] == 1
    fedssl_run(tmp_path, "ldawa-resumed", *LDAWA_YOGI, "num-server-rounds=2",
               f"resume-from={first}")
    assert_same_state(state, final_state(first))
    assert json.loads((first / "summary.json").read_text())["resumed-after-round"] == 1
    resumed = pd.read_csv(first / "metrics.csv")
    train_rows = resumed[(resumed["source"] == "client") & (resumed["metric"] == "train-loss")]
    assert train_rows.groupby("round").size().to_dict() == {1: 3, 2: 3}


def test_fedvssl_clients_keep_their_heads_between_rounds(tmp_path):
    run_dir = fedssl_run(tmp_path, "fedvssl", "strategy=fedvssl", "ssl-method=byol",
                         "partial-prefix=backbone.", "eval-every=0")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    kept = metrics[metrics["metric"] == "partial-local-arrays"]
    kept = kept[kept["source"] == "client"].groupby("round")["value"].agg(list).to_dict()
    assert kept == {1: [0, 0, 0], 2: [1, 1, 1]}  # Context.state survived between rounds
    weight = metrics[metrics["metric"] == "fedvssl-max-loss-weight"]
    assert len(weight) == 2 and weight["value"].between(1 / 3, 1).all()


# ---------------------------------------------------------------- FedRepOpt
def test_fedrepopt_run_ships_scales_and_clients_train_with_masks(tmp_path):
    from fedssl.clients.hyper_search import HyperSearchSettings, save_scales
    from fedssl.models.repopt import default_scales

    scales = save_scales(tmp_path / "scales.pt", HyperSearchSettings(model="repopt-ghost-tiny"),
                         {"scales": default_scales("repopt-ghost-tiny"), "test-accuracy": 0.0,
                          "history": [], "proxy": "initial values"})
    run_dir = fedssl_run(tmp_path, "fedrepopt", "task=image-classification",
                         "model=repopt-ghost-tiny", "strategy=fedrepopt",
                         f"repopt-scales={scales}", "lr=0.01", "momentum=0.0")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    masks = metrics[(metrics["source"] == "client") & (metrics["metric"] == "repopt-masks")]
    assert len(masks) == 6 and (masks["value"] == 1).all()  # 3 clients x 2 rounds
    accuracy = metrics[(metrics["phase"] == "central") & (metrics["metric"] == "test-accuracy")]
    assert list(accuracy["round"]) == [1, 2] and accuracy["value"].between(0, 1).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["test-accuracy"] <= 1.0
    assert "random-init-test-accuracy" in summary
    # Only the plain network travels: no multi-branch arrays in the global model.
    assert not any("scale" in key or "1x1" in key for key in final_state(run_dir))


# ---------------------------------------------------------------- federated audio SSL
AUDIO = ["task=audio-ssl", "dataset=spoken-digits", "model=audio-inceptionnext-tiny",
         "projection-dim=32", "hidden-dim=64"]


def test_audio_ssl_under_ldawa_keeps_rounds_and_selects_the_best(tmp_path):
    """SimCLR on spoken digits, one speaker group per client, L-DAWA; then select-best."""
    run_dir = fedssl_run(tmp_path, "audio-ldawa", *AUDIO, "ssl-method=simclr",
                         "strategy=ldawa", "ldawa-warmup-rounds=1", "partitioner=group",
                         "linear-probe=true")
    assert [p.name for p in sorted((run_dir / "rounds").iterdir())] == [
        "round-0001.safetensors", "round-0002.safetensors"]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    recall = metrics[(metrics["phase"] == "central") & (metrics["metric"] == "retrieval-r1")]
    assert list(recall["round"]) == [1, 2] and recall["value"].between(0, 1).all()
    assert (metrics["metric"] == "ldawa-delta-mean").any()
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("retrieval-r1", "retrieval-r5", "retrieval-r10", "linear-probe-accuracy",
                "random-init-retrieval-r1", "log-mel-linear-probe-accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert main(["select-best", str(run_dir), "-q", "--metric", "val-retrieval-r1"]) == 0
    table = pd.read_csv(run_dir / "model-selection.csv")
    assert table["round"].tolist() == [0, 1, 2]
    best = load_tensors_metadata(run_dir / "best-model.safetensors")
    assert best["round"] == int(table.loc[table["val-retrieval-r1"].idxmax(), "round"])


def test_audio_clip_order_under_fedvssl_updates_only_the_backbone(tmp_path):
    run_dir = fedssl_run(tmp_path, "audio-fedvssl", *AUDIO, "ssl-method=clip-order",
                         "strategy=fedvssl", "partial-prefix=backbone.", "eval-every=2")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    kept = metrics[(metrics["metric"] == "partial-local-arrays") & (metrics["source"] == "client")]
    assert kept.groupby("round")["value"].agg(list).to_dict() == {1: [0, 0, 0], 2: [1, 1, 1]}
    loss = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-loss")]
    assert loss["value"].between(0.0, 10.0).all()  # cross-entropy over 3! = 6 orders
    assert "retrieval-r1" in json.loads((run_dir / "summary.json").read_text())


def test_two_concurrent_runs_with_the_same_settings_keep_separate_directories(tmp_path):
    """`for s in a b; do fedssl run & done`: no run name, the same settings, the same second."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "fedssl.cli", "run", "-q", "--num-supernodes", "2",
               "--runs-dir", str(runs), "num-server-rounds=1", "min-train-nodes=2",
               "min-available-nodes=2", *TINY_TRAINING]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in both]
    assert [p.returncode for p in both] == [0, 0], [err[-2000:] for _, err in outputs]
    dirs = sorted(runs.iterdir())
    assert len(dirs) == 2
    for run_dir in dirs:
        for name in ("config.json", "metrics.csv", "summary.json", "final_model.safetensors"):
            assert (run_dir / name).is_file(), f"{run_dir.name}/{name}"
        assert json.loads((run_dir / "config.json").read_text())["output-dir"] == str(run_dir)
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
        metrics = pd.read_csv(run_dir / "metrics.csv")
        assert not metrics.duplicated().any()  # one run's rows only, each once
        assert sorted(metrics.loc[metrics["source"] == "client", "partition"].unique()) == [0, 1]
    printed = [line.rsplit(" ", 1)[-1] for out, _ in outputs for line in out.splitlines()
               if line.startswith("fedssl: run directory ")]
    assert sorted(printed) == [str(d) for d in dirs]  # each command names its own


# ---------------------------------------------------------------- video
VIDEO = ["task=video-ssl", "dataset=motion-digits", "batch-size=8", "eval-max-samples=40"]


def test_video_ctp_under_fedvssl_keeps_heads_local_and_reports_retrieval(tmp_path):
    run_dir = fedssl_run(tmp_path, "video-fedvssl", *VIDEO, "model=r3d-tiny-ctp",
                         "ssl-method=ctp", "strategy=fedvssl", "partial-prefix=backbone.",
                         "eval-every=1")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    kept = metrics[(metrics["metric"] == "partial-local-arrays") & (metrics["source"] == "client")]
    # Round 2 starts every client from its own CtP head (kept in Context.state), the backbone
    # from the global model.
    assert kept.groupby("round")["value"].agg(list).to_dict() == {1: [0, 0, 0], 2: [1, 1, 1]}
    central = metrics[metrics["phase"] == "central"]
    for metric in ("retrieval-r1", "knn-accuracy"):  # every evaluation round
        rows = central[central["metric"] == metric]
        assert list(rows["round"]) == [1, 2] and rows["value"].between(0, 1).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    ks = (1, 5, 10, 20, 50)  # at the end, VCOP's protocol, next to the random-init encoder
    assert {f"{p}retrieval-r{k}" for p in ("", "random-init-") for k in ks} <= set(summary)
