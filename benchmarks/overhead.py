"""Simulation overhead: Flower + Ray simulation vs. the same local training in plain PyTorch.

1. Runs the default experiment through `fedssl run`'s machinery (private SuperLink, Ray
   clients), with central evaluation switched off so that only the federated training loop
   is timed.
2. Replays the same local training steps (same partitions, seeds and per-round global models,
   FedAvg between rounds) back to back in this one process.
3. Prints wall times, the ratio simulation / pure compute, and a per-round breakdown.

    python benchmarks/overhead.py [--num-supernodes 10] [key=value ...]

Not part of the tests: timings depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from fedssl.clients import RoundInstructions, get_task
from fedssl.config import parse_overrides
from fedssl.launch import Federation, LocalSuperLink, resolve_config


def simulate(cfg, federation: Federation) -> tuple[float, pd.DataFrame]:
    with LocalSuperLink() as link:
        start = time.perf_counter()
        outcome = link.run(cfg.to_run_config(), federation, on_line=lambda line: None,
                           on_progress=lambda r, n: print(f"  simulation round {r}/{n}",
                                                          flush=True))
        wall = time.perf_counter() - start
    if not outcome.completed:
        raise SystemExit(f"simulation did not complete: {outcome.status} {outcome.details}")
    return wall, pd.read_csv(outcome.run_dir / "metrics.csv")


def replay(cfg, num_partitions: int, threads: int) -> list[float]:
    """The same local steps, sequentially, in this process; returns seconds per round."""
    torch.set_num_threads(threads)
    task = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    global_state = task.build_model(cfg).state_dict()
    model = task.build_model(cfg)
    per_round = []
    for rnd in range(1, cfg.num_server_rounds + 1):
        start = time.perf_counter()
        states, weights = [], []
        for pid in range(num_partitions):
            model.load_state_dict(global_state)
            metrics = task.train(model, cfg, partition_id=pid, num_partitions=num_partitions,
                                 instructions=RoundInstructions(server_round=rnd))
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            weights.append(metrics["num-examples"])
        total = sum(weights)
        global_state = {
            k: (sum(s[k].double() * w for s, w in zip(states, weights, strict=True)) / total)
            .to(states[0][k].dtype)
            for k in global_state
        }
        per_round.append(time.perf_counter() - start)
        print(f"  plain PyTorch round {rnd}: {per_round[-1]:.1f}s", flush=True)
    return per_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-supernodes", type=int, default=10)
    parser.add_argument("--client-cpus", type=float, default=1.0)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="fedssl-bench-"))
    overrides = {"eval-every": 0, "linear-probe": False, "wandb-mode": "disabled",
                 "output-dir": str(out / "sim")} | parse_overrides(args.overrides)
    cfg = resolve_config({}, overrides, default_root=out)
    federation = Federation(args.num_supernodes, args.client_cpus, 0.0)
    print(f"benchmark: {cfg.num_server_rounds} rounds, {args.num_supernodes} clients, "
          f"{cfg.ssl_method}/{cfg.model} on {cfg.dataset}")

    sim_wall, metrics = simulate(cfg, federation)
    threads = max(1, int(torch.get_num_threads()))
    pure = replay(cfg, args.num_supernodes, threads)

    server = metrics[(metrics["source"] == "server") & (metrics["metric"] == "round-wall-time-s")]
    clients = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-time")]
    table = pd.DataFrame({
        "round": range(1, cfg.num_server_rounds + 1),
        "simulation round (s)": server.set_index("round")["value"].reindex(
            range(1, cfg.num_server_rounds + 1)).to_numpy(),
        "sum of client train time (s)": clients.groupby("round")["value"].sum().reindex(
            range(1, cfg.num_server_rounds + 1)).to_numpy(),
        "plain PyTorch (s)": pure,
    })
    table["ratio"] = table["simulation round (s)"] / table["plain PyTorch (s)"]
    print("\n" + table.to_markdown(index=False, floatfmt=".2f"))
    rounds_sim = float(table["simulation round (s)"].sum())
    print(f"\nsimulation: whole command {sim_wall:.1f}s, rounds {rounds_sim:.1f}s")
    print(f"plain PyTorch ({threads} threads, one process): {sum(pure):.1f}s")
    print(f"ratio rounds / pure compute: {rounds_sim / sum(pure):.2f}")
    print(f"ratio whole command / pure compute: {sim_wall / sum(pure):.2f}")
    client_total = float(table["sum of client train time (s)"].sum())
    print(f"client train time summed over clients and rounds inside the simulation: "
          f"{client_total:.1f}s ({client_total / sum(pure):.2f}x the plain process)")
    print("note: the plain process augments images (PIL, one core) and trains clients one "
          "after another; the simulation runs clients in parallel Ray workers, so a ratio "
          "below 1 means parallelism outweighs Flower's per-message overhead.")


if __name__ == "__main__":
    main()
