"""Experiment files through ``fedssl experiment``: every mistake in a file is refused with a
message naming the file and the problem (exit 2, no traceback), and an interrupted experiment
leaves a partial report and can be continued."""

import json
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from fedssl.cli import main
from fedssl.launch import RunOutcome


def _refused(capsys, path: Path, *args: str) -> str:
    """Run ``fedssl experiment PATH ARGS``; assert exit 2 without a traceback; stderr."""
    code = main(["experiment", str(path), "--dry-run", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("fedssl: invalid configuration: ")
    assert str(path) in err
    return err


def _write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------- 1. unknown tables and keys
@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[experiment]\nname = "t"\n[grdi]\nssl-method = ["simclr", "byol"]\n',
         ["unknown table [grdi]", "did you mean [grid]?",
          "valid tables: [experiment], [base], [grid], [report]"]),
        ('[experiment]\nname = "t"\nnmu-supernodes = 100\n',
         ["[experiment] has unknown key 'nmu-supernodes'", "did you mean 'num-supernodes'?",
          "valid keys: name, description, seeds, num-supernodes"]),
        ('[report]\nmetric = ["knn-accuracy"]\n',
         ["[report] has unknown key 'metric'", "did you mean 'metrics'?",
          "valid keys: metrics, curve, target"]),
        ('[base]\nlrr = 0.1\n',
         ["[base] has unknown run-config keys ['lrr']", "did you mean 'lr'?", "'batch-size'"]),
        ('[grid]\nx = [{ name = "a", strategyy = "fedavg" }]\n',
         ["unknown keys ['strategyy']", "did you mean 'strategy'?", "name, num-supernodes"]),
        ('seeds = [0, 1]\n[experiment]\nname = "t"\n',
         ["unknown top-level key 'seeds'", "it belongs in [experiment]"]),
    ],
)
def test_unknown_tables_and_keys_are_refused_with_the_valid_ones(tmp_path, capsys, text,
                                                                  fragments):
    err = _refused(capsys, _write(tmp_path, text))
    for fragment in fragments:
        assert fragment in err


# ----------------------------------------------------------- 2. duplicate variant names
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[grid]\nsetting = [{ name = "small", lr = 0.1 }, { name = "small", lr = 0.2 }]\n',
         "[grid] setting has more than one table labelled 'small'"),
        ("[grid]\nlocal-epochs = [1, 5, 1]\n", "[grid] local-epochs lists '1' more than once"),
        ("[experiment]\nseeds = [0, 1, 0]\n", "[experiment] seeds lists [0] more than once"),
    ],
)
def test_variants_with_the_same_name_are_refused(tmp_path, capsys, text, fragment):
    err = _refused(capsys, _write(tmp_path, text))
    assert fragment in err and "same name" in err


# ------------------------------------------- 3. unreadable files, wrong types, wrong --report
def test_a_syntax_error_names_the_line_and_column(tmp_path, capsys):
    err = _refused(capsys, _write(tmp_path, '[experiment]\nname = "t"\nseeds = [0 1]\n'))
    assert "is not valid TOML" in err and "line 3" in err and "column" in err


def test_a_binary_file_is_refused(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_bytes(bytes(range(256)))
    assert "is a binary file, not TOML text" in _refused(capsys, path)
    path.write_bytes(b'[experiment]\nname = "caf\xe9"\n')  # Latin-1, not UTF-8
    assert "is not UTF-8 text" in _refused(capsys, path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[experiment]\nseeds = "zero"\n',
         "[experiment] seeds must be a non-empty list of whole numbers, e.g. seeds = [0, 1], "
         "got 'zero'"),
        ("[experiment]\nseeds = [0.5]\n", "seeds must be a non-empty list of whole numbers"),
        ("[experiment]\nname = 3\n", "[experiment] name must be a non-empty string"),
        ('[report]\ntarget = "high"\n', "[report] target must be a number, got 'high'"),
        ("[base]\n", None),  # an empty file with only [base] is fine (checked: exit 0)
    ],
)
def test_values_of_the_wrong_type_are_refused(tmp_path, capsys, text, fragment):
    path = _write(tmp_path, text)
    if fragment is None:
        assert main(["experiment", str(path), "--dry-run"]) == 0
        return
    assert fragment in _refused(capsys, path)


def _experiment_dir(root: Path, variants: list[str]) -> Path:
    root.mkdir(parents=True)
    pd.DataFrame({"run": range(len(variants)), "variant": variants,
                  "status": "finished:completed", "wall-time-s": 1.0,
                  "run-dir": [str(root / f"{i:02d}") for i in range(len(variants))],
                  "ssl-method": [v.split(",")[0].split("=")[1] for v in variants],
                  "seed": 0}).to_csv(root / "runs.csv", index=False)
    return root


def test_report_with_another_experiments_file_is_refused_before_rewriting(tmp_path, capsys):
    root = _experiment_dir(tmp_path / "a-run", ["ssl-method=simclr,seed=0",
                                                "ssl-method=byol,seed=0"])
    before = (root / "runs.csv").read_text()
    other = _write(tmp_path, '[experiment]\nname = "b"\n[grid]\nlr = [0.1, 0.2]\n', "b.toml")
    code = main(["experiment", str(other), "--report", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"--report {str(root)!r}" in err and str(other) in err
    assert "'ssl-method=simclr,seed=0'" in err and "'lr=0.1,seed=0'" in err
    assert (root / "runs.csv").read_text() == before
    assert not (root / "results.md").exists()
    # The experiment's own file is accepted, and a partial runs.csv (one variant) too.
    own = _write(tmp_path, '[experiment]\nname = "a"\n[grid]\n'
                 'ssl-method = ["simclr", "byol", "simsiam"]\n', "a.toml")
    assert main(["experiment", str(own), "--report", str(root)]) == 0
    assert (root / "results.md").is_file()


# ------------------------------------------------ 4. interrupted experiments, --continue
class FakeSuperLink:
    """Stands in for LocalSuperLink: writes a minimal run directory per run, and raises
    KeyboardInterrupt (as Ctrl-C would) on the run numbered ``interrupt_at``."""

    calls: ClassVar[list[str]] = []
    interrupt_at: ClassVar[int | None] = None

    def __init__(self, ray_address: str = "") -> None:
        self.ray_address = ray_address

    def __enter__(self) -> "FakeSuperLink":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def run(self, run_config, federation, *, on_line=print, on_progress=None) -> RunOutcome:
        FakeSuperLink.calls.append(run_config["run-name"])
        out = Path(run_config["output-dir"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.csv").write_text("round,phase,source,partition,metric,value\n"
                                         "1,central,server,,knn-accuracy,0.25\n")
        if len(FakeSuperLink.calls) == FakeSuperLink.interrupt_at:
            raise KeyboardInterrupt  # mid-run: metrics.csv but no summary.json
        (out / "metrics.csv").write_text(
            "round,phase,source,partition,metric,value\n"
            f"1,central,server,,knn-accuracy,{0.3 + 0.1 * len(FakeSuperLink.calls)}\n")
        (out / "summary.json").write_text(json.dumps(
            {"knn-accuracy": 0.5, "linear-probe-accuracy": 0.4, "rounds": 1}))
        return RunOutcome("1", "finished:completed", "", out, 1.0)


@pytest.fixture
def fake_link(monkeypatch):
    import fedssl.experiments.runner

    monkeypatch.setattr(fedssl.experiments.runner, "LocalSuperLink", FakeSuperLink)
    monkeypatch.setattr(FakeSuperLink, "calls", [])
    monkeypatch.setattr(FakeSuperLink, "interrupt_at", None)
    return FakeSuperLink


THREE = ('[experiment]\nname = "tiny"\nnum-supernodes = 3\n[base]\nnum-server-rounds = 1\n'
         'min-available-nodes = 3\n[grid]\nssl-method = ["simclr", "byol", "simsiam"]\n')


def test_an_interrupted_experiment_leaves_a_report_and_continues(tmp_path, capsys, fake_link):
    spec = _write(tmp_path, THREE)
    runs = tmp_path / "runs"
    fake_link.interrupt_at = 2
    assert main(["experiment", "-q", str(spec), "--runs-dir", str(runs)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (root,) = runs.iterdir()
    assert f"--continue {root}" in err
    partial = pd.read_csv(root / "runs.csv")
    assert list(partial["variant"]) == ["ssl-method=simclr,seed=0"]
    assert list(partial["status"]) == ["finished:completed"]
    assert (root / "results.md").is_file() and (root / "experiment.json").is_file()
    assert (root / "01" / "metrics.csv").is_file()  # the interrupted run's partial directory

    # A directory of another experiment is refused before anything runs.
    other = _write(tmp_path, THREE.replace('"tiny"', '"other"'), "other.toml")
    code = main(["experiment", "-q", str(other), "--continue", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "holds experiment 'tiny', not 'other'" in err and str(other) in err
    # ... and so are other overrides than the experiment started with.
    assert main(["experiment", "-q", str(spec), "lr=0.5", "--continue", str(root)]) == 2
    assert "these differ: lr" in capsys.readouterr().err
    assert fake_link.calls == ["tiny-00", "tiny-01"]

    fake_link.calls.clear()
    fake_link.interrupt_at = None
    assert main(["experiment", "-q", str(spec), "--continue", str(root)]) == 0
    assert fake_link.calls == ["tiny-01", "tiny-02"]  # the completed variant is skipped
    final = pd.read_csv(root / "runs.csv")
    assert list(final["run"]) == [0, 1, 2]
    assert list(final["ssl-method"]) == ["simclr", "byol", "simsiam"]
    assert (final["status"] == "finished:completed").all()
    assert (final["knn-accuracy"] == 0.5).all()
    # The interrupted run was redone in a cleared directory: only the new run's rows.
    assert pd.read_csv(root / "01" / "metrics.csv")["value"].tolist() == [0.4]
    table = pd.read_csv(root / "results.csv")
    assert list(table["ssl-method"]) == ["simclr", "byol", "simsiam"]

    # Nothing left to run: nothing starts, the report is rewritten.
    fake_link.calls.clear()
    assert main(["experiment", "-q", str(spec), "--continue", str(root)]) == 0
    assert fake_link.calls == []


def test_continue_of_a_directory_without_experiment_json(tmp_path, capsys, fake_link):
    """A directory an older version wrote (runs.csv, no experiment.json) is continued; one
    that is not an experiment directory at all is refused."""
    spec = _write(tmp_path, THREE)
    root = _experiment_dir(tmp_path / "tiny-20250101-120000", ["ssl-method=simclr,seed=0"])
    (root / "00").mkdir()
    (root / "00" / "summary.json").write_text(json.dumps({"knn-accuracy": 0.7}))
    assert main(["experiment", "-q", str(spec), "--continue", str(root)]) == 0
    assert fake_link.calls == ["tiny-01", "tiny-02"]
    assert pd.read_csv(root / "runs.csv")["knn-accuracy"].tolist() == [0.7, 0.5, 0.5]

    stranger = tmp_path / "elsewhere"
    stranger.mkdir()
    assert main(["experiment", "-q", str(spec), "--continue", str(stranger)]) == 2
    err = capsys.readouterr().err
    assert "not a directory of experiment 'tiny'" in err and "Traceback" not in err
    assert fake_link.calls == ["tiny-01", "tiny-02"]


def test_continue_and_report_are_exclusive(tmp_path, capsys):
    spec = _write(tmp_path, THREE)
    with pytest.raises(SystemExit) as exit_:
        main(["experiment", str(spec), "--report", str(tmp_path), "--continue", str(tmp_path)])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# ------------------------------------------------------ 5. num-supernodes below 1
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[experiment]\nnum-supernodes = 0\n",
         "[experiment] num-supernodes must be a whole number >= 1 (the simulated clients), "
         "got 0"),
        ("[experiment]\nnum-supernodes = -3\n", "got -3"),
        ('[experiment]\nnum-supernodes = "10"\n', "got '10'"),
        ('[grid]\nsetting = [{ name = "tiny", num-supernodes = 0 }]\n',
         "[grid] setting table 'tiny': num-supernodes must be a whole number >= 1"),
    ],
)
def test_num_supernodes_below_one_is_refused(tmp_path, capsys, text, fragment):
    assert fragment in _refused(capsys, _write(tmp_path, text))


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_experiment_file_validates(path, tmp_path, capsys):
    """Each experiment under experiments/ passes the checks of every one of its runs (what
    --dry-run does before listing them), so a renamed key or a new check cannot leave a
    shipped experiment that fails only when someone runs it."""
    code = main(["experiment", str(path), "--dry-run", "--runs-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "runs ->" in captured.out + captured.err
