"""GuardedStrategy: faulty replies are left out and counted; too few keep the old model."""

import numpy as np
import pytest
from flower_fakes import reply, set_task_identity
from flwr.app import Message
from flwr.serverapp.strategy import FedAvg

from fedssl.strategies import GuardedStrategy, build_strategy, check_reply_arrays
from fedssl.strategies.registry import STRATEGIES, StrategyParams

SPEC = {"w": ((2, 2), "float32"), "b": ((2,), "float32")}


def test_check_reply_arrays_accepts_matching_arrays():
    arrays = {"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}
    assert check_reply_arrays(SPEC, arrays) is None


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"w": np.ones((2, 2), np.float32)}, "wrong keys"),
        ({"w": np.ones((2, 3), np.float32), "b": np.zeros(2, np.float32)}, "wrong shape"),
        ({"w": np.full((2, 2), np.nan, np.float32), "b": np.zeros(2, np.float32)}, "non-finite"),
        ({"w": np.ones((2, 2), np.float32), "b": np.array([np.inf, 0], np.float32)}, "non-finite"),
    ],
)
def test_check_reply_arrays_rejects(arrays, fragment):
    assert fragment in check_reply_arrays(SPEC, arrays)


# ---------------------------------------------------------------- aggregation with fakes of replies
@pytest.fixture(autouse=True)
def _task_identity():
    set_task_identity()


def _reply(node_id: int, w: float, n: int, *, arrays=None, error: bool = False) -> Message:
    arrays = arrays if arrays is not None else {
        "w": np.full((2, 2), w, np.float32), "b": np.full(2, w, np.float32)}
    metrics = {"num-examples": n, "train-loss": w, "partition-id": node_id}
    return reply(node_id, arrays, metrics, error=error)


def _guard(min_train_nodes=2):
    seen = []
    guard = GuardedStrategy(
        FedAvg(min_train_nodes=1, min_available_nodes=1),
        min_train_nodes=min_train_nodes,
        partition_of=lambda nid: nid,
        round_offset=3,
        on_client_metrics=lambda rnd, phase, pid, m: seen.append((rnd, phase, pid, m)),
    )
    guard._expected = {k: v for k, v in SPEC.items()}
    return guard, seen


def test_faulty_replies_are_left_out_and_counted():
    guard, seen = _guard()
    replies = [
        _reply(1, 1.0, 10),
        _reply(2, 3.0, 30),
        _reply(3, 0.0, 10, error=True),
        _reply(4, 0.0, 10, arrays={"w": np.full((2, 2), np.nan, np.float32),
                                   "b": np.zeros(2, np.float32)}),
        _reply(5, 0.0, 10, arrays={"w": np.ones((3, 2), np.float32),
                                   "b": np.zeros(2, np.float32)}),
    ]
    arrays, metrics = guard.aggregate_train(1, replies)
    # FedAvg over the two good replies: (1*10 + 3*30) / 40 = 2.5
    np.testing.assert_allclose(arrays["w"].numpy(), np.full((2, 2), 2.5))
    assert metrics["failures"] == 3 and metrics["valid-replies"] == 2
    assert [(rnd, pid) for rnd, _, pid, _ in seen] == [(4, 1), (4, 2)]  # offset round, sorted
    assert guard.train_metrics[4]["failures"] == 3


def test_replies_with_other_metric_keys_are_left_out_instead_of_failing_the_round():
    guard, seen = _guard()
    odd = reply(3, {"w": np.full((2, 2), 9.0, np.float32), "b": np.full(2, 9.0, np.float32)},
                {"num-examples": 0, "partition-id": 3})  # no train-loss
    arrays, metrics = guard.aggregate_train(1, [_reply(1, 1.0, 10), _reply(2, 3.0, 30), odd])
    np.testing.assert_allclose(arrays["w"].numpy(), np.full((2, 2), 2.5))
    assert metrics["failures"] == 1 and metrics["valid-replies"] == 2
    assert [pid for _, _, pid, _ in seen] == [1, 2]
    # A tie keeps the key set of the first reply in partition order.
    guard, _ = _guard(min_train_nodes=1)
    arrays, metrics = guard.aggregate_train(1, [odd, _reply(1, 1.0, 10)])
    np.testing.assert_allclose(arrays["w"].numpy(), np.full((2, 2), 1.0))
    assert metrics["failures"] == 1


def test_a_lost_node_is_named_by_the_instruction_the_superlink_answers_for():
    """In deployment the SuperLink replies for a node that stopped heartbeating (source node
    1, error code 5): the failure must be charged to that node's partition, not to node 1."""
    from flower_fakes import FakeGrid, record
    from flwr.app import ConfigRecord, Error

    failures = []
    guard = GuardedStrategy(
        FedAvg(min_train_nodes=3, min_available_nodes=3), min_train_nodes=2,
        partition_of=lambda nid: {11: 0, 12: 1, 13: 2}.get(nid, 99),
        on_client_failure=lambda rnd, phase, pid, why: failures.append((rnd, phase, pid, why)))
    start = record({"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)})
    instructions = list(guard.configure_train(1, start, ConfigRecord(), FakeGrid([13, 11, 12])))
    for msg in instructions:  # what the Grid does when it pushes them
        msg.metadata.__dict__["_message_id"] = msg.object_id
    by_node = {m.metadata.dst_node_id: m for m in instructions}
    lost = Message(Error(code=5, reason="Error: Node Unavailable"), reply_to=by_node[12])
    lost.metadata.__dict__["_src_node_id"] = 1  # the SuperLink
    arrays, metrics = guard.aggregate_train(1, [_reply(11, 1.0, 10), _reply(13, 3.0, 10), lost])
    np.testing.assert_allclose(arrays["w"].numpy(), np.full((2, 2), 2.0))
    assert metrics["failures"] == 1
    assert len(failures) == 1
    rnd, phase, pid, why = failures[0]
    assert (rnd, phase, pid) == (1, "train", 1) and "node lost" in why


def test_too_few_valid_replies_keep_the_previous_model():
    guard, _ = _guard(min_train_nodes=2)
    arrays, metrics = guard.aggregate_train(1, [_reply(1, 1.0, 10), _reply(2, 0, 1, error=True)])
    assert arrays is None
    assert metrics["failures"] == 1 and metrics["valid-replies"] == 1


def test_only_empty_clients_keep_the_previous_model():
    guard, _ = _guard(min_train_nodes=2)
    arrays, metrics = guard.aggregate_train(1, [_reply(1, 1.0, 0), _reply(2, 2.0, 0)])
    assert arrays is None and metrics["valid-replies"] == 2


def test_reply_order_does_not_change_the_aggregate():
    guard, _ = _guard()
    forward = [_reply(i, float(i) / 7, 10 + i) for i in range(1, 6)]
    backward = [_reply(i, float(i) / 7, 10 + i) for i in reversed(range(1, 6))]
    a, _ = guard.aggregate_train(1, forward)
    b, _ = guard.aggregate_train(1, backward)
    assert np.array_equal(a["w"].numpy(), b["w"].numpy())


def test_every_registered_strategy_builds_and_unknown_lists_valid(tmp_path):
    from fedssl.clients.hyper_search import HyperSearchSettings, save_scales
    from fedssl.models.repopt import default_scales

    scales = save_scales(tmp_path / "s.pt", HyperSearchSettings(model="repopt-vgg-tiny"),
                         {"scales": default_scales("repopt-vgg-tiny"), "test-accuracy": 0.0,
                          "history": [], "proxy": "initial values"})
    params = StrategyParams(repopt_scales=str(scales))  # fedrepopt needs its scales
    for name in STRATEGIES:
        assert build_strategy(name, params) is not None
    with pytest.raises(ValueError, match="fedavg, fedavgm"):
        build_strategy("nosuch", StrategyParams())


def test_strategy_state_is_the_accumulated_state_not_the_configuration():
    from fedssl.strategies import strategy_state

    fedadam = build_strategy("fedadam", StrategyParams())
    fedadam.m_t = {"w": np.ones(2)}
    state = strategy_state(fedadam)
    assert set(state) == {"current_arrays", "m_t", "v_t"}
    assert np.array_equal(state["m_t"]["w"], np.ones(2))
    assert strategy_state(build_strategy("fedavg", StrategyParams())) == {}


def test_training_instructions_sent_are_reported_with_the_resumed_round():
    """The failure tally needs each round's sampled count; evaluation rounds are not counted."""
    from flower_fakes import FakeGrid, record
    from flwr.app import ConfigRecord

    sent = []
    guard = GuardedStrategy(
        FedAvg(min_train_nodes=2, min_available_nodes=3, fraction_train=0.5), min_train_nodes=1,
        partition_of=lambda nid: nid - 11, round_offset=4,
        on_train_sent=lambda rnd, count: sent.append((rnd, count)))
    start = record({"w": np.zeros(2, np.float32)})
    trained = list(guard.configure_train(1, start, ConfigRecord(), FakeGrid([11, 12, 13])))
    list(guard.configure_evaluate(1, start, ConfigRecord(), FakeGrid([11, 12, 13])))
    assert sent == [(5, len(trained))] and len(trained) == 2
