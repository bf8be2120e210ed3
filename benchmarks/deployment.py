"""Deployment vs simulation: the same run as a loopback deployment and as a Ray simulation.

The run is the default experiment with ``num-server-rounds`` rounds (default 2) over
``--supernodes`` clients (default 3). The deployment is the real thing on one machine: a
SuperLink with TLS and SuperNode authentication and one SuperNode process per partition
(:class:`fedssl.deploy.loopback.LoopbackFederation`); the simulation is ``fedssl run`` (a private
SuperLink with Ray actors). Both wall times are measured in this one process, back to back,
from submission to the run's end; the SuperNodes' start-up is reported apart.

    python benchmarks/deployment.py [--supernodes 3] [--rounds 2] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from fedssl.cli import main as fedssl_main
from fedssl.deploy.loopback import LoopbackFederation


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fedssl-bench-deploy-"))
    overrides = [f"num-server-rounds={args.rounds}", "wandb-mode=disabled", *args.overrides]

    started = time.perf_counter()
    with LoopbackFederation(root / "federation", num_supernodes=args.supernodes) as federation:
        startup = time.perf_counter() - started
        t0 = time.perf_counter()
        submit = federation.submit(*overrides, f"output-dir={root / 'deployed'}")
        for _ in submit.stdout:
            pass
        if submit.wait() != 0:
            raise SystemExit(f"the deployment run failed; logs in {federation.root / 'logs'}")
        deployed = time.perf_counter() - t0

    t0 = time.perf_counter()
    code = fedssl_main(["run", "-q", "--num-supernodes", str(args.supernodes), *overrides,
                        f"output-dir={root / 'simulated'}"])
    simulated = time.perf_counter() - t0
    if code != 0:
        raise SystemExit("the simulation run failed")

    dep, sim = _summary(root / "deployed"), _summary(root / "simulated")
    print(f"\n{args.rounds} rounds of the default experiment, {args.supernodes} clients "
          f"({', '.join(overrides)})")
    print(f"{'':34s}{'deployment':>12s}{'simulation':>12s}{'ratio':>8s}")
    rows = [
        ("run wall time, submit to end (s)", deployed, simulated),
        ("ServerApp wall time (s)", dep["server-wall-time-s"], sim["server-wall-time-s"]),
        ("rounds wall time (s)", dep["rounds-wall-time-s"], sim["rounds-wall-time-s"]),
    ]
    for name, a, b in rows:
        print(f"{name:34s}{a:12.1f}{b:12.1f}{a / b:8.2f}")
    print(f"{'SuperLink + SuperNodes start-up (s)':34s}{startup:12.1f}")
    for key in ("knn-accuracy", "linear-probe-accuracy"):
        if key in dep:
            print(f"{key:34s}{dep[key]:12.4f}{sim[key]:12.4f}")
    print(f"runs in {root}")


if __name__ == "__main__":
    main()
