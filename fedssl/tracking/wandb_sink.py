"""Weights & Biases dashboards, from the ServerApp only (clients report through their replies).

One W&B run per fedssl run, one history row per server round (``step`` = round):

* ``train/<metric>``: the round's aggregated train metrics (``failures``, ``valid-replies``,
  ``train-loss``, ...); ``central/<metric>``: the server's evaluation of the global model;
* ``<family>/<member>``: metric families keep a section of their own, e.g. L-DAWA's per-layer
  divergence ``ldawa-delta/<layer>`` (one line per layer, not buried under ``train/``);
* ``clients/table``: every client's reply (round, partition, metrics), and
  ``clients/<metric>-mean|min|max`` over the round's clients (``clients-evaluate/...`` for
  federated evaluation);
* ``partitions/histogram`` (the ``partitions.png`` bar chart) and ``partitions/class-counts``
  (samples per class and partition), with the first round's row;
* ``plots/<name>``: the run directory's PNGs at the end (``metrics.png``, one heatmap per metric
  family such as ``ldawa-delta.png``); the run summary holds every key of ``summary.json``.

W&B is a view of the run, never a reason for it to fail: the first exception from W&B is logged
as one warning and W&B is switched off for the rest of the run. wandb is imported lazily, so a
run with ``wandb-mode=disabled`` never imports it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import shlex
from collections.abc import Callable, Mapping
from logging import INFO, WARNING
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from flwr.common.logger import log

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["WandbSink", "has_stored_api_key", "resolve_wandb_mode"]

_PREFIX = "[fedssl]"  # the prefix `fedssl run` shows even in quiet mode
_Method = TypeVar("_Method", bound=Callable[..., Any])


def has_stored_api_key(environ: Mapping[str, str]) -> bool:
    """Whether ``wandb login`` stored an API key for the W&B server in use (netrc entry).

    Uses wandb's own netrc reader, which knows the host aliases (``api.wandb.ai`` behind the
    default Forge URL) and honours ``NETRC``; ``WANDB_BASE_URL`` in ``environ`` picks the host.
    A malformed entry counts as no key: ``auto`` then stays offline rather than failing.
    """
    from wandb.env import get_base_url
    from wandb.sdk.lib import urls
    from wandb.sdk.lib.wbauth import read_netrc_auth

    try:
        return bool(read_netrc_auth(host=get_base_url(urls.DEFAULT_BASE_URL, env=dict(environ))))
    except Exception:  # any unreadable credential means "no key"
        return False


def resolve_wandb_mode(
    mode: str,
    environ: Mapping[str, str],
    *,
    stored_key: Callable[[Mapping[str, str]], bool] = has_stored_api_key,
) -> str:
    """The W&B mode a run uses: ``auto`` becomes ``online`` when an API key is configured.

    A key counts as configured when ``WANDB_API_KEY`` is non-empty in ``environ`` or
    ``stored_key(environ)`` says one is stored (``wandb login``). Without one an online run
    would stop at a login prompt or fail, so ``auto`` falls back to ``offline`` (upload later
    with ``wandb sync``). Other modes are returned as they are; the stored-key lookup (which
    imports wandb) only happens for ``auto`` without the environment variable.
    """
    if mode != "auto":
        return mode
    if environ.get("WANDB_API_KEY", "").strip():
        return "online"
    return "online" if stored_key(environ) else "offline"


def _guarded(method: _Method) -> _Method:
    """A no-op once W&B is off; the first exception switches it off instead of propagating."""

    @functools.wraps(method)
    def wrapper(self: WandbSink, *args: Any, **kwargs: Any) -> Any:
        if self.run is None:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # W&B must never end a training run
            self._switch_off(method.__name__, err)
            return None

    return wrapper  # type: ignore[return-value]


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """The finite scalar metrics as Python numbers (lists and flags are left out, as in
    metrics.csv)."""
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            continue
        value = value.item() if isinstance(value, np.generic) else value
        if math.isfinite(value):
            out[key] = value
    return out


class WandbSink:
    """The ServerApp's W&B run; every method is a no-op when W&B is disabled or switched off.

    Client rows and the partition plot are queued and go out with the next round's row, so a
    round is one W&B step with everything that belongs to it (and steps only move forward,
    which W&B requires; a resumed run continues after its last step).
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
        job_type: str = "",
    ) -> None:
        self.run: Any = None
        self.mode = resolve_wandb_mode(mode, os.environ)
        self._pending: dict[str, Any] = {}
        self._client_rows: dict[str, list[tuple[int, int, dict[str, float | int]]]] = {}
        self._tables: dict[str, tuple[Any, list[str]]] = {}
        self._last_step: int | None = None
        if self.mode == "disabled":
            return
        try:
            import wandb

            self.run = wandb.init(
                mode=self.mode,
                project=project,
                name=name,
                group=group or None,
                job_type=job_type or None,
                tags=tags or None,
                config=config,
                dir=str(run_dir),
                id=run_id,  # a resumed run continues the same W&B run
                resume="allow",
                settings=wandb.Settings(silent=True, console="off"),
            )
            self._announce(mode, run_id)
        except Exception as err:  # e.g. a rejected key, no network
            self._switch_off("init", err)

    def _announce(self, asked: str, run_id: str | None) -> None:
        """Say which mode the run uses (and why, for auto) and, offline, how to upload it."""
        why = ""
        if asked == "auto":
            why = (" (wandb-mode=auto: an API key is configured)" if self.mode == "online" else
                   " (wandb-mode=auto: no API key in WANDB_API_KEY or from `wandb login`)")
        if self.mode != "offline":
            log(INFO, "%s W&B %s run%s: %s", _PREFIX, self.mode, why, self.run.url)
            return
        sync_dir = Path(self.run.settings.sync_dir)
        target = shlex.quote(str(sync_dir))
        if run_id:  # resumed: the earlier processes' parts of this run lie next to it
            target = f"--id {run_id} {shlex.quote(str(sync_dir.parent))}/offline-run-*-{run_id}"
        log(INFO, "%s W&B offline run%s; upload it with: wandb sync %s", _PREFIX, why, target)

    @property
    def run_id(self) -> str | None:
        """Stored in the checkpoint, so that a resumed run logs to the same W&B run."""
        return None if self.run is None else self.run.id

    def _switch_off(self, what: str, err: Exception) -> None:
        log(WARNING, "%s W&B %s failed (%s: %s); W&B is off for the rest of this run, "
            "training goes on", _PREFIX, what, type(err).__name__, err)
        run, self.run = self.run, None
        if run is not None:
            with contextlib.suppress(Exception):  # already reported above
                run.finish(exit_code=1)
                _wait_for_wandb()

    # ------------------------------------------------------------------ inputs
    @_guarded
    def add_client_metrics(
        self, server_round: int, phase: str, partition: int, metrics: Mapping[str, Any]
    ) -> None:
        """Queue one client's reply (``GuardedStrategy.on_client_metrics``) for its round."""
        from fedssl.common.messages import IDENTITY_METRICS

        values = {k: v for k, v in _numbers(metrics).items() if k not in IDENTITY_METRICS}
        self._client_rows.setdefault(phase, []).append((server_round, partition, values))

    @_guarded
    def log_partitions(self, histograms: pd.DataFrame, image: Path) -> None:
        """The data split: the ``partitions.png`` bar chart and the class counts as a table
        (rows = partitions, one column per class plus the total, sortable in the UI)."""
        import wandb

        counts = histograms.copy()
        counts.columns = [str(c) for c in counts.columns]
        counts["total"] = counts.sum(axis=1)
        counts = counts.reset_index(names="partition")
        self._pending["partitions/histogram"] = wandb.Image(str(image))
        self._pending["partitions/class-counts"] = wandb.Table(dataframe=counts)

    # ------------------------------------------------------------------ per round
    @_guarded
    def log_round(
        self, server_round: int, train: Mapping[str, Any], central: Mapping[str, Any]
    ) -> None:
        """One W&B step per round: server metrics, the round's client rows and their spread."""
        payload = self._pending | self._server_metrics(train, central)
        for phase, rows in self._client_rows.items():
            if rows:
                payload |= self._client_table(phase, rows) | self._client_spread(phase, rows)
        self.run.log(payload, step=server_round)
        self._pending, self._client_rows = {}, {}
        self._last_step = server_round

    @staticmethod
    def _server_metrics(train: Mapping[str, Any], central: Mapping[str, Any]) -> dict[str, Any]:
        """``train/<k>`` and ``central/<k>``; a family key ``ldawa-delta/<layer>`` stays as it
        is, so W&B gives the family its own section with one panel per member."""
        out = {(k if "/" in k else f"train/{k}"): v for k, v in _numbers(train).items()}
        return out | {f"central/{k}": v for k, v in _numbers(central).items()}

    @staticmethod
    def _section(phase: str) -> str:
        return "clients" if phase == "train" else f"clients-{phase}"

    def _client_table(
        self, phase: str, rows: list[tuple[int, int, dict[str, float | int]]]
    ) -> dict[str, Any]:
        """Every client reply as a row of one table per phase.

        INCREMENTAL log mode: each round logs only its new rows, and the W&B UI shows the
        increments as one table (filter/sort/group by round or partition) that grows while the
        run goes. A table re-logged whole every round would store rounds x clients rows
        ~rounds/2 times over; one logged at the end would show nothing during the run and be
        lost with a crash. Columns are fixed by the first round (a key that appears later is
        in the ``clients/<metric>-*`` scalars but not in the table; a missing one is empty).
        """
        import wandb

        if phase not in self._tables:
            columns = list(dict.fromkeys(k for _, _, values in rows for k in values))
            table = wandb.Table(columns=["round", "partition", *columns], log_mode="INCREMENTAL")
            self._tables[phase] = (table, columns)
        table, columns = self._tables[phase]
        for rnd, partition, values in rows:
            table.add_data(rnd, partition, *(values.get(c) for c in columns))
        return {f"{self._section(phase)}/table": table}

    def _client_spread(
        self, phase: str, rows: list[tuple[int, int, dict[str, float | int]]]
    ) -> dict[str, float]:
        """Mean, min and max of each client metric over the round's clients, as line plots."""
        by_key: dict[str, list[float]] = {}
        for _, _, values in rows:
            for key, value in values.items():
                by_key.setdefault(key, []).append(float(value))
        section = self._section(phase)
        out: dict[str, float] = {}
        for key, values in by_key.items():
            out[f"{section}/{key}-mean"] = sum(values) / len(values)
            out[f"{section}/{key}-min"] = min(values)
            out[f"{section}/{key}-max"] = max(values)
        return out

    # ------------------------------------------------------------------ end of run
    @_guarded
    def log_plots(self, run_dir: Path) -> None:
        """The run directory's plots as ``plots/<name>`` images, at the last round's step.

        Every PNG the recorder wrote (``metrics.png``, one ``<family>.png`` heatmap per metric
        family, e.g. L-DAWA's per-layer δ), so the dashboard follows whatever it draws;
        ``partitions.png`` is already there as ``partitions/histogram``.
        """
        import wandb

        images = {f"plots/{path.stem}": wandb.Image(str(path))
                  for path in sorted(Path(run_dir).glob("*.png")) if path.name != "partitions.png"}
        if images or self._pending:
            self.run.log(self._pending | images, step=self._last_step)
            self._pending = {}

    @_guarded
    def log_summary(self, values: Mapping[str, Any]) -> None:
        """Every key of ``summary.json`` into the run summary (the runs table's columns); a
        table of numbers (``failures-by-round``) stays a nested table, anything else becomes
        its text."""
        self.run.summary.update({k: _summary_value(v) for k, v in values.items()})

    @_guarded
    def finish(self) -> None:
        """Send what is still queued (a run that logged no round), close the run and wait
        until wandb has written it out."""
        if self._pending:
            self.run.log(self._pending, step=self._last_step)
            self._pending = {}
        run, self.run = self.run, None
        run.finish()
        _wait_for_wandb()


def _wait_for_wandb() -> None:
    """Wait until wandb-core has written out the finished run.

    ``run.finish()`` only asks wandb-core (a separate process) to close the run: the offline
    ``run-*.wandb`` file can still be a bare header when it returns. wandb's atexit hook would
    wait, but it is not reliable in processes started the way Flower starts its apps;
    ``wandb.teardown()`` waits now, so the run is complete on disk (ready for ``wandb sync``)
    when the ServerApp logs its results. The ServerApp has no other W&B run to keep open.
    """
    import wandb

    wandb.teardown()


def _summary_value(value: Any) -> Any:
    if isinstance(value, (int, float, str, bool)):
        return value
    if isinstance(value, Mapping) and all(
            isinstance(v, (int, float, str, bool)) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return str(value)
