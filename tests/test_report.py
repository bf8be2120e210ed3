"""What `fedssl run` prints when a run ends: the headline scores of whichever task ran."""

import json

from fedssl.launch import RunOutcome, report_outcome


def test_an_audio_run_prints_its_retrieval_scores_and_floor(tmp_path, capsys):
    summary = {"retrieval-r1": 0.61, "retrieval-r5": 0.9, "retrieval-r10": 0.95,
               "random-init-retrieval-r1": 0.3, "knn-accuracy": 0.55,
               "linear-probe-accuracy": 0.6, "log-mel-linear-probe-accuracy": 0.4,
               "total-failures": 0, "run-dir": str(tmp_path)}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    code = report_outcome(RunOutcome("7", "finished:completed", "", tmp_path, 12.0))
    out = capsys.readouterr().out
    assert code == 0
    for key in ("retrieval-r1", "retrieval-r5", "retrieval-r10", "random-init-retrieval-r1",
                "log-mel-linear-probe-accuracy", "knn-accuracy"):
        assert f"  {key}" in out, key
    assert "run-dir" not in out  # only scores, not the bookkeeping


def test_a_failed_run_says_its_status_and_exits_1(tmp_path, capsys):
    code = report_outcome(RunOutcome("8", "finished:failed", "boom", tmp_path, 3.0))
    assert code == 1
    assert "did not complete: status finished:failed: boom" in capsys.readouterr().err


def test_skipped_data_files_are_reported_only_when_there_are_some(tmp_path, capsys):
    for count in (0, 2):
        (tmp_path / "summary.json").write_text(json.dumps(
            {"knn-accuracy": 0.5, "total-failures": 0, "skipped-files-count": count}))
        report_outcome(RunOutcome("9", "finished:completed", "", tmp_path, 1.0))
        out = capsys.readouterr().out
        assert ("skipped-files-count" in out) == bool(count)
