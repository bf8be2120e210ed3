"""How long a configuration error takes to answer, next to importing torch.

Each case runs ``fedssl run <bad value>`` in a fresh Python process (the interpreter and
fedssl's imports counted, as a user sees them) and keeps the best of ``--repeat`` runs; the
reference is ``python -c "import torch"`` timed the same way. Every case must exit 2 with
``fedssl: invalid configuration``; a case that does not is reported and fails the benchmark.

    python benchmarks/validation_time.py [--repeat 5]

Not part of the tests: timings depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES: dict[str, list[str]] = {
    "bad number (lr=banana)": ["lr=banana"],
    "unknown name (model=nope)": ["model=nope"],
    "task/dataset mismatch": ["task=audio-ssl", "dataset=cifar10"],
    "strategy check (strategy=fedrepopt)": ["strategy=fedrepopt"],
    "missing data-dir (dataset=cifar10)": ["dataset=cifar10", "data-dir=/nonexistent"],
}


def best_of(argv: list[str], repeat: int, expect_rc: int | None) -> float:
    """Fastest wall time of ``repeat`` fresh runs of ``argv``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if expect_rc is not None and (done.returncode != expect_rc
                                      or "invalid configuration" not in done.stderr):
            raise SystemExit(f"{argv}: exit {done.returncode}, stderr {done.stderr[-500:]!r}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (best kept)")
    args = parser.parse_args()

    torch_s = best_of([sys.executable, "-c", "import torch"], args.repeat, expect_rc=None)
    reference = 'python -c "import torch" (reference)'
    print(f"{reference:48s} {torch_s:6.2f} s")
    for label, overrides in CASES.items():
        seconds = best_of([sys.executable, "-m", "fedssl.cli", "run", *overrides],
                          args.repeat, expect_rc=2)
        print(f"{'fedssl run ' + label:48s} {seconds:6.2f} s   "
              f"{seconds / torch_s:4.2f}x import torch")


if __name__ == "__main__":
    main()
