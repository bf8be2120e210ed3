"""The run directory: resolved config, long-format metrics, summary and plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["METRIC_COLUMNS", "RunRecorder"]

METRIC_COLUMNS = ["round", "phase", "source", "partition", "metric", "value"]


class RunRecorder:
    """Appends metrics rows to ``metrics.csv`` as they arrive; writes JSON and plots on demand.

    Columns: round, phase (``train``/``evaluate``/``central``/``final``), source (``server`` or
    ``client``), partition (client partition id, empty for the server), metric, value.
    On resume, rows of rounds after the checkpoint are dropped: they belong to the round the
    interruption cut short, which is run again.
    """

    def __init__(self, run_dir: str | Path, *, resume_round: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.csv"
        if resume_round is not None and self.metrics_path.exists():
            frame = pd.read_csv(self.metrics_path)
            frame[frame["round"] <= resume_round].to_csv(self.metrics_path, index=False)
        elif not self.metrics_path.exists() or resume_round is None:
            with open(self.metrics_path, "w", newline="") as fh:
                csv.writer(fh).writerow(METRIC_COLUMNS)

    def log(
        self,
        server_round: int,
        phase: str,
        metrics: dict[str, Any],
        *,
        partition: int | None = None,
    ) -> None:
        source = "server" if partition is None else "client"
        with open(self.metrics_path, "a", newline="") as fh:
            writer = csv.writer(fh)
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.writerow([server_round, phase, source,
                                     "" if partition is None else partition, name, value])

    def write_json(self, name: str, payload: dict[str, Any]) -> Path:
        path = self.run_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        tmp.replace(path)
        return path

    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.metrics_path)

    def plot_families(self, server: pd.DataFrame | None = None) -> list[Path]:
        """One heatmap (member x round) per metric family ``family/member``.

        L-DAWA's per-layer δ is such a family: a layer whose clients disagree with the global
        model shows up as a dark row.
        """
        if server is None:
            frame = self.metrics()
            server = frame[frame["source"] == "server"]
        members = server[server["metric"].str.contains("/", regex=False)]
        paths = []
        for family, rows in members.groupby(members["metric"].str.split("/").str[0]):
            grid = rows.assign(member=rows["metric"].str.split("/", n=1).str[1]).pivot_table(
                index="member", columns="round", values="value", aggfunc="last", sort=False)
            height = min(2.0 + 0.22 * len(grid), 30.0)
            fig, ax = plt.subplots(figsize=(2.5 + 0.5 * grid.shape[1], height))
            image = ax.imshow(grid.values, aspect="auto", cmap="viridis", interpolation="none")
            ax.set_yticks(range(len(grid)), grid.index, fontsize=7)
            ax.set_xticks(range(grid.shape[1]), grid.columns)
            ax.set_xlabel("round")
            ax.set_title(family)
            fig.colorbar(image, ax=ax)
            fig.tight_layout()
            path = self.run_dir / f"{family}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
        return paths

    def plot(self) -> Path | None:
        """One panel per server metric over rounds, plus the mean client train loss."""
        frame = self.metrics()
        server = frame[(frame["source"] == "server") & (frame["phase"].isin(["train", "central"]))]
        client_loss = frame[(frame["source"] == "client") & (frame["metric"] == "train-loss")]
        panels = sorted(set(zip(server["phase"], server["metric"], strict=True)))
        # Families of per-layer metrics ("ldawa-delta/<key>") get a heatmap of their own.
        panels = [p for p in panels
                  if p[1] not in ("valid-replies", "local-steps") and "/" not in p[1]]
        self.plot_families(server)
        if client_loss.empty and not panels:
            return None
        n = len(panels) + (not client_loss.empty)
        ncols = min(n, 3)
        nrows = -(-n // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
        axes = grid.ravel()
        for ax in axes[n:]:
            ax.set_visible(False)
        axes = axes[:n]
        i = 0
        if not client_loss.empty:
            per_round = client_loss.groupby("round")["value"]
            axes[0].plot(per_round.mean().index, per_round.mean().values, marker="o", label="mean")
            axes[0].fill_between(per_round.min().index, per_round.min().values,
                                 per_round.max().values, alpha=0.2, label="min-max")
            axes[0].set_title("client train-loss")
            axes[0].legend()
            i = 1
        for ax, (phase, metric) in zip(axes[i:], panels, strict=True):
            rows = server[(server["phase"] == phase) & (server["metric"] == metric)]
            ax.plot(rows["round"], rows["value"], marker="o")
            ax.set_title(f"{phase} {metric}")
        for ax in axes:
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = self.run_dir / "metrics.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
