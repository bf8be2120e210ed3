"""The run directory: resolved config, long-format metrics, summary and plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["METRIC_COLUMNS", "RunRecorder", "family_figure", "metrics_figure"]

METRIC_COLUMNS = ["round", "phase", "source", "partition", "metric", "value"]


class RunRecorder:
    """Appends metrics rows to ``metrics.csv`` as they arrive; writes JSON and plots on demand.

    Columns: round, phase (``train``/``evaluate``/``central``/``final``), source (``server`` or
    ``client``), partition (client partition id, empty for the server), metric, value.
    On resume, rows of rounds after the checkpoint are dropped: they belong to the round the
    interruption cut short, which is run again. So are ``final`` rows: they closed the earlier
    segment (a finished run extended with more rounds), and the resumed run writes its own.
    """

    def __init__(self, run_dir: str | Path, *, resume_round: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.csv"
        if resume_round is not None and self.metrics_path.exists():
            frame = pd.read_csv(self.metrics_path)
            kept = (frame["round"] <= resume_round) & (frame["phase"] != "final")
            frame[kept].to_csv(self.metrics_path, index=False)
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
            fig = family_figure(str(family), rows)
            path = self.run_dir / f"{family}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
        return paths

    def metrics_figure(self, frame: pd.DataFrame | None = None) -> Figure | None:
        """The figure of :meth:`plot` (not saved); None when there is nothing to draw."""
        return metrics_figure(self.metrics() if frame is None else frame)

    def plot(self) -> Path | None:
        """``metrics.png`` (see :func:`metrics_figure`) and one heatmap per metric family."""
        frame = self.metrics()
        self.plot_families(frame[frame["source"] == "server"])
        fig = metrics_figure(frame)
        if fig is None:
            return None
        path = self.run_dir / "metrics.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


# Per-client bookkeeping, not a series to read; the server's local-steps and valid-replies are
# the same numbers aggregated.
CLIENT_BOOKKEEPING = ("num-examples", "partition-id", "local-steps")
SERVER_BOOKKEEPING = ("valid-replies", "local-steps", "failures")
# Server metrics ``<stem>-mean``/``-min``/``-max`` of one stem share a panel.
_STATS = ("mean", "min", "max")
# What a family's values are, for its colour bar.
FAMILY_LABELS = {"ldawa-delta": "δ (cos to global), mean over clients"}


def _round_axis(ax: Axes, limits: tuple[float, float] | None = None) -> None:
    """Rounds are whole numbers: integer ticks, the same range on every panel."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if limits is not None:
        ax.set_xlim(limits[0] - 0.5, limits[1] + 0.5)
    ax.set_xlabel("round")
    ax.grid(alpha=0.3)


def _series(rows: pd.DataFrame, metric: str) -> pd.Series:
    """One server metric by round (the last value where a round was logged twice)."""
    picked = rows[rows["metric"] == metric]
    return picked.groupby("round")["value"].last()


def _stem(metric: str) -> str:
    head, _, stat = metric.rpartition("-")
    return head if head and stat in _STATS else metric


def metrics_figure(frame: pd.DataFrame) -> Figure | None:
    """One panel per series of a run's ``metrics.csv``, none drawn twice.

    * the central monitor per round (``central <metric>``), with the same network at random
      init (the final phase's ``random-init-<metric>``) as a dashed reference line;
    * each client train metric: the server's weighted mean over the round's clients, with the
      clients' min-max band (the server's aggregate of that metric is this line, not a panel of
      its own);
    * the other server train metrics, ``<stem>-mean``/``-min``/``-max`` of one stem together;
      failed replies per round only when there were any;
    * audio runs: the final retrieval recall R@1/R@5/R@10, trained vs random init.

    Round axes have integer ticks and one range on every panel.
    """
    server = frame[frame["source"] == "server"]
    train = server[(server["phase"] == "train") & ~server["metric"].str.contains("/",
                                                                                regex=False)]
    central = server[server["phase"] == "central"]
    final = server[server["phase"] == "final"]
    final_values = dict(zip(final["metric"], final["value"], strict=True))
    clients = frame[(frame["source"] == "client") & (frame["phase"] == "train")
                    & ~frame["metric"].isin(CLIENT_BOOKKEEPING)]
    client_metrics = list(dict.fromkeys(clients["metric"]))
    rounds = pd.concat([train["round"], central["round"], clients["round"]])
    limits = (float(rounds.min()), float(rounds.max())) if len(rounds) else None

    panels: list[tuple[str, Callable[[Axes], None], bool]] = []  # title, draw, round axis
    for metric in dict.fromkeys(central["metric"]):
        panels.append((f"central {metric}",
                       lambda ax, m=metric: _draw_central(ax, _series(central, m),
                                                          final_values.get(f"random-init-{m}")),
                       True))
    for metric in client_metrics:
        panels.append((f"clients {metric}",
                       lambda ax, m=metric: _draw_clients(ax, clients[clients["metric"] == m],
                                                          _series(train, m)),
                       True))
    others = [m for m in dict.fromkeys(train["metric"])
              if m not in client_metrics and m not in SERVER_BOOKKEEPING]
    for stem in dict.fromkeys(map(_stem, others)):
        members = [m for m in others if _stem(m) == stem]
        panels.append((f"train {stem}",
                       lambda ax, ms=members: _draw_server(ax, {m: _series(train, m) for m in ms}),
                       True))
    failures = _series(train, "failures")
    if failures.gt(0).any():
        panels.append(("failed replies", lambda ax: _draw_failures(ax, failures), True))
    recall = {int(k.removeprefix("retrieval-r")): v for k, v in final_values.items()
              if k.startswith("retrieval-r") and k.removeprefix("retrieval-r").isdigit()}
    if recall:
        panels.append(("final retrieval recall@k",
                       lambda ax: _draw_recall(ax, recall, final_values), False))
    if not panels:
        return None

    n = len(panels)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    for ax, (title, draw, by_round) in zip(axes, panels, strict=False):
        draw(ax)
        ax.set_title(title)
        if by_round:
            _round_axis(ax, limits)
    if len(failures) and not failures.gt(0).any():
        fig.suptitle("no failed replies", fontsize=9, x=0.99, ha="right")
    fig.tight_layout()
    return fig


def _draw_central(ax: Axes, values: pd.Series, random_init: float | None) -> None:
    ax.plot(values.index, values.values, marker="o", label="global model")
    if random_init is not None and pd.notna(random_init):
        ax.axhline(random_init, color="black", linestyle="--", linewidth=1,
                   label=f"random init ({random_init:.3f})")
        ax.legend(fontsize=8)


def _draw_clients(ax: Axes, rows: pd.DataFrame, aggregate: pd.Series) -> None:
    per_round = rows.groupby("round")["value"]
    low, high = per_round.min(), per_round.max()
    if aggregate.empty:  # no server aggregate: the plain mean
        line, label = per_round.mean(), "mean over clients"
    else:
        line, label = aggregate, "weighted mean (server)"
    ax.plot(line.index, line.values, marker="o", label=label)
    ax.fill_between(low.index, low.values, high.values, alpha=0.2, label="clients min-max")
    ax.legend(fontsize=8)


def _draw_server(ax: Axes, series: dict[str, pd.Series]) -> None:
    for metric, values in series.items():
        label = metric.rpartition("-")[2] if len(series) > 1 else None
        ax.plot(values.index, values.values, marker="o", label=label)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _draw_failures(ax: Axes, failures: pd.Series) -> None:
    ax.bar(failures.index, failures.values, color="tab:red", width=0.6)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("replies")


def _draw_recall(ax: Axes, recall: dict[int, float], final: dict[str, float]) -> None:
    ks = sorted(recall)
    x = np.arange(len(ks))
    init = [final.get(f"random-init-retrieval-r{k}", np.nan) for k in ks]
    trained = ax.bar(x - 0.2, [recall[k] for k in ks], width=0.4, label="trained")
    baseline = ax.bar(x + 0.2, init, width=0.4, color="lightgrey", edgecolor="black",
                      label="random init")
    for bars in (trained, baseline):
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [f"R@{k}" for k in ks])
    top = np.nanmax([*recall.values(), *init])
    ax.set_ylim(0, min(1.0, top * 1.15) if top <= 1 else top * 1.15)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")


def family_figure(family: str, rows: pd.DataFrame) -> Figure:
    """The heatmap of one metric family (members x rounds), its colour bar on its own axes.

    Rounds without a value (L-DAWA's FedAvg warm-up) are left blank, so each column sits at
    its round.
    """
    grid = rows.assign(member=rows["metric"].str.split("/", n=1).str[1]).pivot_table(
        index="member", columns="round", values="value", aggfunc="last", sort=False)
    first, last = int(grid.columns.min()), int(grid.columns.max())
    grid = grid.reindex(columns=range(first, last + 1))
    height = min(max(3.2, 1.4 + 0.22 * len(grid)), 30.0)
    width = min(4.0 + 0.5 * grid.shape[1], 16.0)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(grid.values, aspect="auto", cmap="viridis", interpolation="none",
                      extent=(first - 0.5, last + 0.5, len(grid) - 0.5, -0.5))
    ax.set_yticks(range(len(grid)), grid.index, fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_title(family)
    # Beside the heatmap, in space taken from its own axes: as tall as the heatmap (no box
    # aspect to shrink it) and about a quarter inch wide whatever the figure's size.
    bar = fig.colorbar(image, ax=ax, label=FAMILY_LABELS.get(family, family), pad=0.02,
                       fraction=min(0.1, 0.25 / (0.7 * width)))
    bar.ax.set_box_aspect(None)
    fig.tight_layout()
    return fig
