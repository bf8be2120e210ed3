"""L-DAWA's numeric core against hand-computed values, and against torch's cosine."""

import math

import numpy as np
import pytest
import torch

from fedssl.strategies.ldawa import layer_cosine, ldawa_aggregate, ldawa_aggregate_with_deltas

F32 = np.float32


def test_orthogonal_client_layer_is_dropped_and_aligned_one_kept():
    g = {"w": np.array([1.0, 0.0], F32)}
    clients = [{"w": np.array([1.0, 0.0], F32)}, {"w": np.array([0.0, 1.0], F32)}]
    # δ = (1, 0): (1*[1,0] + 0*[0,1]) / 2
    np.testing.assert_allclose(ldawa_aggregate(g, clients)["w"], [0.5, 0.0])


def test_negative_cosine_is_not_clipped_and_flips_the_sign():
    g = {"w": np.array([1.0, 0.0], F32)}
    clients = [{"w": np.array([-2.0, 0.0], F32)}, {"w": np.array([1.0, 1.0], F32)}]
    # δ_a = -1 -> [2, 0]; δ_b = 1/sqrt(2) -> [1/sqrt2, 1/sqrt2]; uniform mean
    r = 1 / math.sqrt(2)
    out, deltas = ldawa_aggregate_with_deltas(g, clients)
    np.testing.assert_allclose(out["w"], [(2 + r) / 2, r / 2], rtol=1e-6)
    np.testing.assert_allclose(deltas["w"], [-1.0, r], rtol=1e-6)


def test_zero_norm_on_either_side_means_delta_one():
    zeros = {"w": np.zeros(3, F32)}
    clients = [{"w": np.array([1.0, 2.0, 3.0], F32)}, {"w": np.array([3.0, 0.0, 1.0], F32)}]
    np.testing.assert_allclose(ldawa_aggregate(zeros, clients)["w"], [2.0, 1.0, 2.0])
    g = {"w": np.array([1.0, 0.0, 0.0], F32)}
    out, deltas = ldawa_aggregate_with_deltas(g, [zeros, {"w": np.array([4.0, 0, 0], F32)}])
    assert deltas["w"] == [1.0, 1.0]
    np.testing.assert_allclose(out["w"], [2.0, 0.0, 0.0])


def test_scalar_keys_are_averaged_without_scaling():
    g = {"s": np.array(5.0, F32), "w": np.array([1.0, 0.0], F32)}
    clients = [
        {"s": np.array(1.0, F32), "w": np.array([0.0, 1.0], F32)},
        {"s": np.array(3.0, F32), "w": np.array([0.0, 1.0], F32)},
    ]
    out, deltas = ldawa_aggregate_with_deltas(g, clients)
    assert out["s"].shape == () and float(out["s"]) == 2.0
    assert "s" not in deltas
    weighted = ldawa_aggregate(g, clients, num_examples=[1, 3], weighting="num-examples")
    assert float(weighted["s"]) == pytest.approx((1 * 1 + 3 * 3) / 4)


def test_integer_buffers_are_rounded_back_to_their_dtype():
    g = {"n": np.array(7, np.int64), "c": np.array([1, 0], np.int32)}
    clients = [
        {"n": np.array(10, np.int64), "c": np.array([2, 0], np.int32)},
        {"n": np.array(12, np.int64), "c": np.array([0, 4], np.int32)},
    ]
    out = ldawa_aggregate(g, clients, num_examples=[1, 2], weighting="num-examples")
    # n: (10 + 2*12) / 3 = 11.33 -> 11;  c: δ = (1, 0) -> (1*[2,0] + 0) / 3 = [0.67, 0] -> [1, 0]
    assert out["n"].dtype == np.int64 and int(out["n"]) == 11
    assert out["c"].dtype == np.int32 and out["c"].tolist() == [1, 0]


def test_uniform_versus_num_examples_weighting():
    g = {"w": np.array([1.0, 0.0], F32)}
    clients = [{"w": np.array([1.0, 0.0], F32)}, {"w": np.array([3.0, 0.0], F32)}]
    np.testing.assert_allclose(ldawa_aggregate(g, clients)["w"], [2.0, 0.0])
    np.testing.assert_allclose(
        ldawa_aggregate(g, clients, num_examples=[3, 1], weighting="num-examples")["w"],
        [1.5, 0.0],
    )
    with pytest.raises(ValueError, match="needs one count per client"):
        ldawa_aggregate(g, clients, weighting="num-examples")
    with pytest.raises(ValueError, match="uniform, num-examples"):
        ldawa_aggregate(g, clients, weighting="by-size")


def test_cosine_is_clipped_at_one_and_identical_models_come_back():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 3, 3, 3)).astype(F32)
    assert layer_cosine(w, w) <= 1.0
    assert layer_cosine(w, w) == pytest.approx(1.0)
    out = ldawa_aggregate({"w": w}, [{"w": w}, {"w": w.copy()}, {"w": w.copy()}])
    np.testing.assert_allclose(out["w"], w, rtol=1e-6)


def test_matches_torch_cosine_similarity_on_random_models():
    rng = np.random.default_rng(1)
    shapes = {"conv": (8, 3, 3, 3), "bias": (8,), "bn.running_var": (8,), "fc": (10, 8)}
    g = {k: rng.standard_normal(s).astype(F32) for k, s in shapes.items()}
    clients = [
        {k: (v + rng.normal(0, 0.5, v.shape)).astype(F32) for k, v in g.items()} for _ in range(4)
    ]
    n = [10, 20, 30, 40]
    out = ldawa_aggregate(g, clients, num_examples=n, weighting="num-examples")
    for key in shapes:
        expected = torch.zeros(shapes[key], dtype=torch.float64)
        for c, nk in zip(clients, n, strict=True):
            cos = torch.nn.functional.cosine_similarity(
                torch.from_numpy(c[key]).double().flatten(),
                torch.from_numpy(g[key]).double().flatten(),
                dim=0,
            )
            expected += (nk / sum(n)) * min(cos.item(), 1.0) * torch.from_numpy(c[key]).double()
        np.testing.assert_allclose(out[key], expected.numpy(), rtol=1e-5, atol=1e-6)
        assert out[key].dtype == F32 and out[key].shape == shapes[key]


def test_keys_and_shapes_must_match_the_global_model():
    g = {"w": np.ones(2, F32)}
    with pytest.raises(ValueError, match="different keys"):
        ldawa_aggregate(g, [{"v": np.ones(2, F32)}])
    with pytest.raises(ValueError, match="shape"):
        ldawa_aggregate(g, [{"w": np.ones(3, F32)}])
    with pytest.raises(ValueError, match="at least one client"):
        ldawa_aggregate(g, [])
