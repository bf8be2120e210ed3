"""FedVSSL's numeric core against hand-computed values."""

import math

import numpy as np
import pytest

from fedssl.strategies.fedvssl import fedvssl_aggregate, fedvssl_coefficients, loss_weights

F32 = np.float32
# Two clients: n = (1, 3); losses (0, ln 3) -> exp(-L) = (1, 1/3) -> loss weights (3/4, 1/4).
CLIENTS = [{"w": np.array([1.0, 10.0], F32)}, {"w": np.array([3.0, 0.0], F32)}]
N = [1, 3]
LOSSES = [0.0, math.log(3.0)]
FEDAVG = np.array([(1 + 9) / 4, (10 + 0) / 4])  # [2.5, 2.5]
BY_LOSS = np.array([0.75 * 1 + 0.25 * 3, 0.75 * 10 + 0.25 * 0])  # [1.5, 7.5]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [(0.0, FEDAVG), (1.0, BY_LOSS), (0.9, 0.9 * BY_LOSS + 0.1 * FEDAVG)],
)
def test_alpha_mixes_the_loss_based_and_sample_weighted_aggregates(alpha, expected):
    out = fedvssl_aggregate(CLIENTS, N, LOSSES, alpha=alpha, beta=0.0)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-6)


def test_the_mix_is_element_wise_not_a_concatenation():
    # Flower's baseline returns [0.5*fedavg] + [0.5*loss] as a list twice as long, and clients
    # read only its first half. Here each key holds 0.5*loss + 0.5*fedavg, element by element.
    out = fedvssl_aggregate(CLIENTS, N, LOSSES, alpha=0.5, beta=0.0)
    assert list(out) == ["w"] and out["w"].shape == (2,)
    np.testing.assert_allclose(out["w"], [2.0, 5.0], rtol=1e-6)


@pytest.mark.parametrize(("beta", "keep"), [(0.0, 1.0), (1.0, 0.5), (0.5, 0.75)])
def test_beta_smooths_with_the_previous_global_model(beta, keep):
    previous = {"w": np.array([-4.0, 8.0], F32)}
    out = fedvssl_aggregate(CLIENTS, N, LOSSES, alpha=0.0, beta=beta, previous_global=previous)
    np.testing.assert_allclose(out["w"], keep * FEDAVG + (1 - keep) * previous["w"], rtol=1e-6)
    # Without a previous global model there is nothing to smooth with.
    no_prev = fedvssl_aggregate(CLIENTS, N, LOSSES, alpha=0.0, beta=beta)
    np.testing.assert_allclose(no_prev["w"], FEDAVG, rtol=1e-6)


def test_loss_weights_are_stable_for_large_losses():
    weights = loss_weights([1000.0, 1001.0])
    e = math.exp(-1.0)
    np.testing.assert_allclose(weights, [1 / (1 + e), e / (1 + e)])
    out = fedvssl_aggregate(CLIENTS, N, [1000.0, 1001.0], alpha=1.0, beta=0.0)
    assert np.isfinite(out["w"]).all()
    np.testing.assert_allclose(out["w"], [1 / (1 + e) * 1 + e / (1 + e) * 3,
                                          1 / (1 + e) * 10], rtol=1e-6)


def test_coefficients_sum_to_one():
    c = fedvssl_coefficients([5, 10, 85], [2.0, 0.5, 1.0], alpha=0.3)
    assert sum(c) == pytest.approx(1.0)


def test_integer_and_scalar_arrays_keep_their_dtype():
    clients = [
        {"n": np.array(10, np.int64), "w": np.array([1.0], F32)},
        {"n": np.array(13, np.int64), "w": np.array([2.0], F32)},
    ]
    out = fedvssl_aggregate(clients, [1, 1], [0.0, 0.0], alpha=0.0, beta=0.0)
    assert out["n"].dtype == np.int64 and out["n"].shape == () and int(out["n"]) == 12  # 11.5
    assert out["w"].dtype == F32


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"alpha": 1.5, "beta": 0.0}, "alpha"),
        ({"alpha": 0.5, "beta": -0.1}, "beta"),
    ],
)
def test_out_of_range_settings_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        fedvssl_aggregate(CLIENTS, N, LOSSES, **kwargs)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="losses"):
        fedvssl_aggregate(CLIENTS, N, [0.0], alpha=0.5, beta=0.0)
    with pytest.raises(ValueError, match="finite"):
        fedvssl_aggregate(CLIENTS, N, [0.0, float("nan")], alpha=0.5, beta=0.0)
    with pytest.raises(ValueError, match="different keys"):
        fedvssl_aggregate(CLIENTS, N, LOSSES, alpha=0.5, beta=1.0,
                          previous_global={"v": np.zeros(2, F32)})
