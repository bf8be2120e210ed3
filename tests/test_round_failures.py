"""A round that loses too many clients stops the run, saying which round, how many and why
(fedssl.flwr_app.failures); the counting is pure, the ServerApp path runs in this process.
The real case (a SIGKILLed Ray ClientApp actor) is in test_actor_kill_e2e.py."""

import json

import pandas as pd
import pytest
from flower_fakes import InProcessGrid, set_task_identity
from flwr.app import Message
from flwr.app.error import Error

from fedssl.config import ConfigError, RunConfig, load_defaults
from fedssl.flwr_app.failures import (
    FailureTally,
    TooManyFailures,
    failure_message,
    too_many_failures,
)
from fedssl.flwr_app.server_app import run_federated
from fedssl.tracking import load_checkpoint

# What Flower 1.41's Ray backend put in the error reply of a killed actor (seen in a run).
ACTOR_DIED = ("<class 'ray.exceptions.ActorDiedError'>:<'The actor died unexpectedly before "
              "finishing this task.\n\tclass_name: ClientAppActor\nThe actor is dead because "
              "its worker process has died. Worker exit type: SYSTEM_ERROR'>")


@pytest.mark.parametrize(("lost", "sampled", "fraction", "stop"), [
    (0, 3, 0.0, False),   # nothing lost never stops a run
    (1, 3, 0.0, True),    # 0.0: the first lost client stops it
    (1, 3, 0.5, False),
    (1, 2, 0.5, False),   # exactly the share allowed is allowed
    (2, 3, 0.5, True),
    (3, 3, 0.99, True),
    (3, 3, 1.0, False),   # 1.0: never
    (0, 0, 0.0, False),   # a round that sampled nobody lost nobody
    (5, 0, 0.5, False),
])
def test_too_many_failures(lost, sampled, fraction, stop):
    assert too_many_failures(lost, sampled, fraction) is stop


def test_tally_counts_errors_left_out_replies_and_missing_replies():
    tally = FailureTally()
    tally.sent(1, 3)
    for _ in range(3):
        tally.replied(1)
    tally.sent(2, 4)
    tally.replied(2)
    tally.failed(2, "client error (code 0): The actor is dead")
    # two of round 2's clients sent nothing within the timeout
    assert tally.lost(1) == 0 and tally.lost(2) == 3
    assert tally.by_round() == {2: 3}
    tally.check(1, 0.0)
    tally.check(2, 0.75)
    with pytest.raises(TooManyFailures) as caught:
        tally.check(2, 0.5, timeout=60)
    assert caught.value.round == 2
    text = str(caught.value)
    assert text.startswith("round 2: 3 of 4 sampled clients failed")
    assert "max-failed-fraction=0.5" in text
    assert "The actor is dead" in text and "no reply within round-timeout=60s (x2)" in text
    assert "Ray ClientApp actor died" in text and "resume-from" in text


def test_message_groups_repeated_errors_and_cuts_long_ones():
    text = failure_message(3, 2, 3, 0.5, ["client error: boom", "client error: boom"])
    assert "errors: client error: boom (x2)" in text
    assert "actor" not in text  # no Ray hint for an ordinary exception
    long = failure_message(3, 1, 1, 0.0, ["x" * 1000])
    assert "x" * 240 + "..." in long and "x" * 241 not in long


def test_config_bounds():
    assert RunConfig.from_run_config(load_defaults()).max_failed_fraction == 0.5
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="max-failed-fraction"):
            RunConfig.from_run_config(load_defaults() | {"max-failed-fraction": bad})


class DyingGrid(InProcessGrid):
    """From round ``dies_at`` on, the nodes of ``dead`` answer training with the error reply
    Flower's Ray backend sends for a dead actor."""

    def __init__(self, cfg, num_nodes: int, dead: set[int], dies_at: int) -> None:
        super().__init__(cfg, num_nodes)
        self.dead, self.dies_at, self.train_rounds = {1000 + p for p in dead}, dies_at, 0

    def send_and_receive(self, messages, timeout=None):
        messages = list(messages)
        if messages and messages[0].metadata.message_type != "train":
            return super().send_and_receive(messages, timeout)
        self.train_rounds += 1
        if self.train_rounds < self.dies_at:
            return super().send_and_receive(messages, timeout)
        for i, msg in enumerate(messages):  # a real Grid gives instructions their ids
            msg.metadata.__dict__["_message_id"] = f"instruction-{self.train_rounds}-{i}"
        alive = [m for m in messages if m.metadata.dst_node_id not in self.dead]
        replies = super().send_and_receive(alive, timeout)
        for msg in messages:
            if msg.metadata.dst_node_id in self.dead:
                error = Message(Error(code=0, reason=ACTOR_DIED), reply_to=msg)
                error.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
                replies.append(error)
        return replies


def _cfg(tmp_path, **overrides) -> RunConfig:
    return RunConfig.from_run_config(load_defaults() | {
        "num-server-rounds": 3, "max-local-steps": 1, "batch-size": 16, "eval-every": 0,
        "linear-probe": False, "eval-max-samples": 100, "partitioner": "iid",
        "min-train-nodes": 1, "min-available-nodes": 3, "wandb-mode": "disabled",
        "keep-round-models": False, "output-dir": str(tmp_path / "run")} | overrides)


def test_a_round_that_loses_most_clients_stops_the_run_as_failed(tmp_path):
    cfg = _cfg(tmp_path)
    set_task_identity()
    with pytest.raises(TooManyFailures) as caught:
        run_federated(DyingGrid(cfg, 3, dead={0, 2}, dies_at=2), cfg)
    assert caught.value.round == 2
    assert str(caught.value).startswith("round 2: 2 of 3 sampled clients failed")
    assert f"resume-from={(tmp_path / 'run').resolve()}" in str(caught.value)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed-round"] == 2
    assert summary["failures-by-round"] == {"2": 2} and summary["total-failures"] == 2
    assert "The actor is dead" in summary["failure"]
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["round"].max() == 2  # round 3 never ran
    failed = metrics[(metrics["metric"] == "failed")]
    assert sorted(failed[["round", "partition"]].values.tolist()) == [[2, 0], [2, 2]]
    server = metrics[(metrics["source"] == "server") & (metrics["metric"] == "failures")]
    assert server["value"].tolist() == [0, 2]
    # the round's checkpoint is kept, so the run can be continued
    assert load_checkpoint(tmp_path / "run")["round"] == 2


def test_losses_within_the_tolerated_share_complete_and_are_summarised(tmp_path):
    cfg = _cfg(tmp_path)
    set_task_identity()
    summary = run_federated(DyingGrid(cfg, 3, dead={1}, dies_at=2), cfg)
    assert summary["status"] == "completed"
    assert summary["failures-by-round"] == {"2": 1, "3": 1}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
