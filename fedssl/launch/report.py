"""What the user reads when a run ends: its headline results, or why it did not complete.

Shared by ``fedssl run`` and ``fedssl deploy submit``; the exit code it returns is theirs.
"""

from __future__ import annotations

import json
import sys

from fedssl.launch.flwr_cli import RunOutcome

__all__ = ["report_outcome"]


# What the command prints of a finished run's summary, when the task reports it: the encoder's
# scores next to its random initialisation and the data-only floor, for every task.
HEADLINE_METRICS = (
    "linear-probe-accuracy", "random-init-linear-probe-accuracy",
    "raw-pixel-linear-probe-accuracy", "log-mel-linear-probe-accuracy",
    "knn-accuracy", "random-init-knn-accuracy",
    "retrieval-r1", "retrieval-r5", "retrieval-r10", "random-init-retrieval-r1",
    "test-accuracy", "random-init-test-accuracy", "reparameterized-test-accuracy",
    "total-failures", "skipped-files-count",
)


# Printed only when there is something to say.
ONLY_WHEN_NONZERO = ("skipped-files-count",)


def report_outcome(outcome: RunOutcome) -> int:
    """Print a finished run's headline results (exit code 0) or why it failed (1)."""
    summary_path = outcome.run_dir / "summary.json" if outcome.run_dir else None
    if outcome.completed and (summary_path is None or not summary_path.exists()):
        # Deployment: the ServerApp wrote its results on the SuperLink's machine.
        where = outcome.run_dir or "the run directory the ServerApp logged"
        print(f"\nfedssl: run {outcome.run_id} completed in {outcome.wall_time_s:.1f}s; "
              f"results on the SuperLink's machine in {where}")
        return 0
    if outcome.completed:
        summary = json.loads(summary_path.read_text())
        print(f"\nfedssl: run {outcome.run_id} completed in {outcome.wall_time_s:.1f}s")
        for key in HEADLINE_METRICS:
            if key in summary and not (key in ONLY_WHEN_NONZERO and not summary[key]):
                print(f"  {key:36s} {summary[key]:.4f}" if isinstance(summary[key], float)
                      else f"  {key:36s} {summary[key]}")
        print(f"fedssl: results in {outcome.run_dir}")
        return 0
    print(f"\nfedssl: run {outcome.run_id or '?'} did not complete: status {outcome.status}"
          f"{': ' + outcome.details if outcome.details else ''}", file=sys.stderr)
    if outcome.run_dir:
        print(f"fedssl: partial results (if any) in {outcome.run_dir}", file=sys.stderr)
    return 1
