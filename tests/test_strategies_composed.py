"""L-DAWA and FedVSSL as Flower strategies: warm-up, server optimisers, state, registry."""

import numpy as np
import pytest
from flower_fakes import FakeGrid, numpy_of, record, reply, set_task_identity
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg, FedAvgM, FedYogi

from fedssl.strategies import (
    LDAWA,
    FedVSSL,
    GuardedStrategy,
    build_strategy,
    fedvssl_aggregate,
    ldawa_aggregate,
    restore_strategy_state,
    strategy_state,
)
from fedssl.strategies.registry import StrategyParams

F32 = np.float32
GLOBAL = {"w": np.array([1.0, 0.0], F32), "n": np.array(4, np.int64)}
CLIENT_ARRAYS = [
    {"w": np.array([2.0, 0.0], F32), "n": np.array(6, np.int64)},
    {"w": np.array([1.0, 1.0], F32), "n": np.array(6, np.int64)},
    {"w": np.array([-1.0, 2.0], F32), "n": np.array(6, np.int64)},
]
SIZES = [10, 30, 60]
LOSSES = [1.0, 0.5, 2.0]


@pytest.fixture(autouse=True)
def _task_identity():
    set_task_identity()


def _replies(sizes=SIZES):
    return [
        reply(i + 1, arrays, {"num-examples": n, "train-loss": loss, "partition-id": i})
        for i, (arrays, n, loss) in enumerate(zip(CLIENT_ARRAYS, sizes, LOSSES, strict=True))
    ]


def _round(strategy, server_round, replies=None, global_arrays=GLOBAL):
    messages = list(strategy.configure_train(server_round, record(global_arrays), ConfigRecord(),
                                             FakeGrid([1, 2, 3])))
    assert len(messages) == 3
    arrays, metrics = strategy.aggregate_train(server_round, replies or _replies())
    return numpy_of(arrays), dict(metrics)


def _fedavg(sizes=SIZES):
    total = sum(sizes)
    return sum(n / total * c["w"] for c, n in zip(CLIENT_ARRAYS, sizes, strict=True))


def _base(cls=FedAvg, **kwargs):
    return cls(min_train_nodes=1, min_available_nodes=1, fraction_evaluate=0.0, **kwargs)


def test_ldawa_is_fedavg_during_warmup_then_its_own_rule():
    strategy = LDAWA(_base(), warmup_rounds=2)
    for rnd in (1, 2):
        arrays, metrics = _round(strategy, rnd)
        np.testing.assert_allclose(arrays["w"], _fedavg(), rtol=1e-6)
        assert not any(k.startswith("ldawa-delta") for k in metrics)
    arrays, metrics = _round(strategy, 3)
    expected = ldawa_aggregate(GLOBAL, CLIENT_ARRAYS)
    np.testing.assert_allclose(arrays["w"], expected["w"], rtol=1e-6)
    assert arrays["n"].dtype == np.int64 and int(arrays["n"]) == 6
    # Per-layer mean δ over clients: cos with [1, 0] is 1, 1/sqrt(2), -1/sqrt(5).
    deltas = [1.0, 1 / np.sqrt(2), -1 / np.sqrt(5)]
    assert metrics["ldawa-delta/w"] == pytest.approx(np.mean(deltas))
    assert metrics["ldawa-delta-mean"] == pytest.approx(np.mean(deltas))
    assert metrics["ldawa-delta-min"] == pytest.approx(-1 / np.sqrt(5))
    assert "ldawa-delta/n" not in metrics  # scalars are not scaled
    assert metrics["train-loss"] == pytest.approx(np.average(LOSSES, weights=SIZES))


def test_ldawa_with_fedyogi_applies_yogi_to_the_ldawa_aggregate():
    eta, tau, b1, b2 = 0.1, 1e-3, 0.9, 0.99
    base = _base(FedYogi, eta=eta, tau=tau, beta_1=b1, beta_2=b2)
    strategy = LDAWA(base, warmup_rounds=0)
    arrays, _ = _round(strategy, 1)
    # Yogi from zero moments: m = (1-b1) d, v = (1-b2) d^2, x + eta m / (sqrt(v) + tau)
    d = ldawa_aggregate(GLOBAL, CLIENT_ARRAYS)["w"] - GLOBAL["w"]
    m, v = (1 - b1) * d, (1 - b2) * d**2
    np.testing.assert_allclose(arrays["w"], GLOBAL["w"] + eta * m / (np.sqrt(v) + tau),
                               rtol=1e-5)
    # The moments live in Flower's FedYogi, and are checkpointed through L-DAWA.
    state = strategy_state(strategy)
    assert set(state["base"]["__strategy__"]) >= {"m_t", "v_t"}
    fresh = LDAWA(_base(FedYogi, eta=eta, tau=tau, beta_1=b1, beta_2=b2), warmup_rounds=0)
    restore_strategy_state(fresh, state)
    np.testing.assert_array_equal(fresh.base.m_t["w"], base.m_t["w"])


def test_ldawa_with_fedavgm_and_unit_lr_first_round_is_the_ldawa_aggregate():
    strategy = LDAWA(_base(FedAvgM, server_learning_rate=1.0, server_momentum=0.9),
                     warmup_rounds=0)
    arrays, _ = _round(strategy, 1)
    np.testing.assert_allclose(arrays["w"], ldawa_aggregate(GLOBAL, CLIENT_ARRAYS)["w"],
                               rtol=1e-6)


def test_empty_clients_are_left_out_of_the_custom_mean():
    strategy = LDAWA(_base(), warmup_rounds=0)
    arrays, _ = _round(strategy, 1, _replies(sizes=[10, 0, 60]))
    kept = [CLIENT_ARRAYS[0], CLIENT_ARRAYS[2]]
    np.testing.assert_allclose(arrays["w"], ldawa_aggregate(GLOBAL, kept)["w"], rtol=1e-6)


def test_fedvssl_smooths_from_round_two_with_the_global_it_started_from():
    strategy = FedVSSL(_base(), alpha=0.9, beta=1.0)
    first, metrics = _round(strategy, 1)
    np.testing.assert_allclose(
        first["w"], fedvssl_aggregate(CLIENT_ARRAYS, SIZES, LOSSES, 0.9, 1.0)["w"], rtol=1e-6)
    assert 0 < metrics["fedvssl-max-loss-weight"] < 1
    second, _ = _round(strategy, 2, global_arrays=first)
    mix = fedvssl_aggregate(CLIENT_ARRAYS, SIZES, LOSSES, 0.9, 0.0)["w"]
    np.testing.assert_allclose(second["w"], 0.5 * mix + 0.5 * first["w"], rtol=1e-6)


def test_fedvssl_inside_the_guard_uses_the_offset_round():
    # A resumed run (round offset 3) must smooth in its first local round too.
    guard = GuardedStrategy(FedVSSL(_base(), alpha=0.0, beta=1.0), min_train_nodes=1,
                            partition_of=lambda nid: nid, round_offset=3)
    arrays, _ = _round(guard, 1)
    np.testing.assert_allclose(arrays["w"], 0.5 * _fedavg() + 0.5 * GLOBAL["w"], rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["none", "fedavgm", "fedadam", "fedyogi", "fedadagrad"])
@pytest.mark.parametrize("name", ["ldawa", "fedvssl"])
def test_registry_builds_each_rule_with_each_server_optimizer(name, optimizer):
    strategy = build_strategy(name, StrategyParams(server_optimizer=optimizer))
    expected_base = {"none": "FedAvg", "fedavgm": "FedAvgM", "fedadam": "FedAdam",
                     "fedyogi": "FedYogi", "fedadagrad": "FedAdagrad"}[optimizer]
    assert type(strategy.base).__name__ == expected_base
    arrays, _ = _round(strategy, 5)
    assert np.isfinite(arrays["w"]).all()
