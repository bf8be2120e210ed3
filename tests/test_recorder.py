"""metrics.csv across a resume: each round's rows once, and one set of final rows."""

from __future__ import annotations

import pandas as pd

from fedssl.tracking.recorder import RunRecorder


def test_a_resumed_run_keeps_finished_rounds_once_and_only_its_own_final_rows(tmp_path):
    first = RunRecorder(tmp_path)
    for rnd in (1, 2):
        first.log(rnd, "central", {"knn-accuracy": 0.1 * rnd})
    first.log(2, "final", {"linear-accuracy": 0.3})
    first.log(3, "central", {"knn-accuracy": 0.9})  # a round the interruption cut short
    resumed = RunRecorder(tmp_path, resume_round=2)
    for rnd in (3, 4):
        resumed.log(rnd, "central", {"knn-accuracy": 0.1 * rnd})
    resumed.log(4, "final", {"linear-accuracy": 0.5})
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert not frame.duplicated(["round", "phase", "source", "partition", "metric"]).any()
    central = frame[frame["phase"] == "central"]
    assert list(central["round"]) == [1, 2, 3, 4]
    assert central["value"].round(3).tolist() == [0.1, 0.2, 0.3, 0.4]
    final = frame[frame["phase"] == "final"]
    assert final[["round", "value"]].values.tolist() == [[4, 0.5]]
