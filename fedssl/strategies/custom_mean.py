"""Replace the client mean of a Flower strategy, keep everything else of it."""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

__all__ = ["CustomMeanStrategy", "DecodedArrays"]


class DecodedArrays(Mapping[str, np.ndarray]):
    """Read-only view of an ArrayRecord that decodes an entry to numpy when it is read.

    The aggregation cores read each client's entry for one key at a time, so with this view
    the server holds one decoded layer per client, not one decoded model per client.
    """

    def __init__(self, record: ArrayRecord) -> None:
        self._record = record

    def __getitem__(self, key: str) -> np.ndarray:
        return self._record[key].numpy()

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)


def _to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in arrays.items()})


class CustomMeanStrategy(Strategy):
    """A Flower strategy whose weighted mean of client arrays is replaced by another rule.

    Sampling, the train and evaluate instructions, the metric aggregation and the server
    optimiser all stay those of ``base``, a Flower ``FedAvg`` or one of its optimiser
    subclasses (``FedAvgM``, ``FedAdam``, ``FedYogi``, ``FedAdagrad``). A subclass only says
    how client arrays are combined (:meth:`combine`); the combination then takes the place of
    the mean that ``base`` would have computed:

    * with a plain ``FedAvg`` base it is the new global model;
    * with an optimiser base it is handed to ``base.aggregate_train`` as the only reply, so
      ``base`` computes ``combination - global`` as its pseudo-gradient and applies its own
      update rule (momentum, Adam, Yogi, Adagrad) unchanged. The optimiser therefore logs
      "Received 1 results" for that call.

    Replies whose weight (``base.weighted_by_key``, normally ``num-examples``) is zero did no
    training (an empty partition); they are left out of the combination.

    Parameters
    ----------
    base : FedAvg
        The Flower strategy that samples, configures, evaluates and applies the server update.
    """

    #: Name shown in logs and summaries.
    label = "custom mean"

    def __init__(self, base: FedAvg) -> None:
        if not isinstance(base, FedAvg):
            raise TypeError(
                f"base must be Flower's FedAvg or a subclass of it, got {type(base).__name__}"
            )
        self.base = base
        # The global model of the current round, set by configure_train. Transient: it is
        # re-sent every round, so it is not part of the checkpointed strategy state.
        self._global: ArrayRecord | None = None

    @property
    def weighted_by_key(self) -> str:
        return self.base.weighted_by_key

    # ------------------------------------------------------------------ what subclasses say
    def active(self, server_round: int) -> bool:
        """Whether the custom rule replaces the mean this round (else ``base`` aggregates)."""
        return True

    @abstractmethod
    def combine(
        self,
        server_round: int,
        global_arrays: Mapping[str, np.ndarray],
        client_arrays: Sequence[Mapping[str, np.ndarray]],
        client_metrics: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """The combined arrays and diagnostics to log for this round."""

    # ------------------------------------------------------------------ train
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global = arrays
        return self.base.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [msg for msg in replies if not msg.has_error()]
        if not self.active(server_round):
            return self.base.aggregate_train(server_round, replies)
        if self._global is None:
            raise RuntimeError(f"{self.label}: aggregate_train called before configure_train")
        used = [
            msg.content for msg in replies
            if _first_metrics(msg.content)[self.weighted_by_key] > 0
        ]
        if not used:
            log(INFO, "round %d: no reply with %s > 0; nothing to aggregate", server_round,
                self.weighted_by_key)
            return None, None
        # Zero-weight replies would add nothing to the weighted metric average either.
        metrics = self.base.train_metrics_aggr_fn(used, self.weighted_by_key)
        combined, diagnostics = self.combine(
            server_round,
            DecodedArrays(self._global),
            [DecodedArrays(next(iter(c.array_records.values()))) for c in used],
            [dict(_first_metrics(c)) for c in used],
        )
        record = _to_record(combined)
        del combined  # the serialised copy is all that is needed from here on
        for key, value in diagnostics.items():
            metrics[key] = float(value)
        if type(self.base) is FedAvg:
            return record, metrics
        log(INFO, "round %d: %s of %d replies handed to %s as their mean", server_round,
            self.label, len(used), type(self.base).__name__)
        as_reply = Message(
            content=RecordDict({
                self.base.arrayrecord_key: record,
                "metrics": MetricRecord({self.weighted_by_key: 1}),
            }),
            metadata=copy.copy(replies[0].metadata),
        )
        stepped, _ = self.base.aggregate_train(server_round, [as_reply])
        return stepped, metrics

    # ------------------------------------------------------------------ evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.base.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.base.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        log(INFO, "\t├──> %s, in place of the client mean of:", self.label)
        self.base.summary()


def _first_metrics(content: RecordDict) -> MetricRecord:
    return next(iter(content.metric_records.values()))
