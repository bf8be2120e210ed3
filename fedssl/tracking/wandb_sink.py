"""Weights & Biases logging, from the ServerApp only (clients report through their replies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["WandbSink"]


class WandbSink:
    """Logs per-round metrics to W&B; ``mode='disabled'`` makes every call a no-op.

    wandb is imported lazily so that runs with W&B disabled do not pay for it.
    """

    def __init__(
        self,
        *,
        mode: str,
        project: str,
        name: str,
        group: str,
        tags: list[str],
        config: dict[str, Any],
        run_dir: Path,
        run_id: str | None = None,
    ) -> None:
        self.run = None
        if mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            mode=mode,
            project=project,
            name=name,
            group=group or None,
            tags=tags or None,
            config=config,
            dir=str(run_dir),
            id=run_id,
            resume="allow",
            settings=wandb.Settings(silent=True, console="off"),
        )

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def log(self, server_round: int, metrics: dict[str, float]) -> None:
        if self.run is not None and metrics:
            self.run.log(metrics, step=server_round)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
