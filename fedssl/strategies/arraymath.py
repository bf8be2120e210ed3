"""Small array helpers shared by the aggregation cores (plain numpy, no Flower).

Client arrays may be any ``Mapping[str, np.ndarray]``; the cores read each client's entry
for a key exactly once and keep one accumulator per key, so a lazy mapping that decodes on
access (see :class:`fedssl.strategies.custom_mean.DecodedArrays`) holds one layer per client
at a time, as Flower's own ``aggregate_arrayrecords`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.linalg.blas import get_blas_funcs

__all__ = [
    "accumulate",
    "accumulator_dtype",
    "cast_like",
    "check_same_keys",
    "check_shape",
    "check_unit_interval",
    "normalised",
    "weighted_sum",
]


def accumulate(acc: np.ndarray, value: np.ndarray, coefficient: float) -> None:
    """``acc += coefficient * value`` in place, in one pass and without a temporary.

    float32/float64 arrays go through BLAS axpy (this is most of a model's bytes); anything
    else (integers, mixed dtypes, non-contiguous views) through numpy.
    """
    if (
        acc.dtype == value.dtype
        and acc.dtype.kind == "f"
        and acc.dtype.itemsize in (4, 8)
        and acc.flags.c_contiguous
        and value.flags.c_contiguous
        and acc.size > 0
    ):
        axpy = get_blas_funcs("axpy", (acc,))
        axpy(value.reshape(-1), acc.reshape(-1), a=coefficient)
    else:
        acc += np.multiply(value, coefficient, dtype=acc.dtype)


def accumulator_dtype(dtype: np.dtype) -> np.dtype:
    """Sum floats in their own precision (at least float32), integers and bools in float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.result_type(dtype, np.float32)
    return np.dtype(np.float64)


def cast_like(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast an accumulated array back to the input dtype; integers and bools are rounded."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        value = np.rint(value)
    return np.asarray(value).astype(dtype, copy=False)


def normalised(weights: Sequence[float], what: str) -> list[float]:
    """``weights / sum(weights)``; refuses negative, non-finite or all-zero weights."""
    values = np.asarray(weights, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{what}: need one weight per client, got {list(weights)!r}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{what}: weights must be finite and >= 0, got {list(weights)!r}")
    total = values.sum()
    if total <= 0:
        raise ValueError(f"{what}: weights sum to {total}; at least one must be positive")
    return (values / total).tolist()


def check_same_keys(
    reference: Mapping[str, np.ndarray], clients: Sequence[Mapping[str, np.ndarray]], what: str
) -> None:
    """Every client must carry exactly the reference's keys."""
    expected = set(reference)
    for index, arrays in enumerate(clients):
        if set(arrays) != expected:
            missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
            raise ValueError(
                f"{what}: client {index} has different keys "
                f"(missing {missing[:3]}, unexpected {extra[:3]})"
            )


def check_shape(value: np.ndarray, key: str, shape: tuple[int, ...], index: int) -> np.ndarray:
    """``value`` as an array, or a ValueError naming the client and key of a shape mismatch."""
    value = np.asarray(value)
    if value.shape != shape:
        raise ValueError(f"client {index}: {key!r} has shape {value.shape}, expected {shape}")
    return value


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def weighted_sum(
    client_arrays: Sequence[Mapping[str, np.ndarray]], coefficients: Sequence[float]
) -> dict[str, np.ndarray]:
    """``sum_k c_k * arrays_k`` per key, in the first client's keys, shapes and dtypes."""
    if len(client_arrays) != len(coefficients) or not client_arrays:
        raise ValueError(
            f"{len(client_arrays)} clients but {len(coefficients)} coefficients"
        )
    check_same_keys(client_arrays[0], client_arrays[1:], "weighted_sum")
    out: dict[str, np.ndarray] = {}
    for key in client_arrays[0]:
        acc: np.ndarray | None = None
        for index, (arrays, coefficient) in enumerate(
            zip(client_arrays, coefficients, strict=True)
        ):
            value = np.asarray(arrays[key])
            if acc is None:
                # The first client fixes the shape and dtype (its entry is read only once).
                acc = np.zeros(value.shape, accumulator_dtype(value.dtype))
                reference = value
            accumulate(acc, check_shape(value, key, reference.shape, index), coefficient)
        out[key] = cast_like(acc, reference.dtype)
    return out
