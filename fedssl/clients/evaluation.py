"""Evaluation of frozen encoders on labelled data: kNN monitor, linear probe, retrieval."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable

import numpy as np
import torch
from lightly.utils.benchmarking import knn_predict
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fedssl.common.retrieval import retrieval_recall  # the audio and video tasks share it
from fedssl.datasets import default_cache_dir

__all__ = ["cached_accuracy", "extract_features", "knn_accuracy", "linear_probe_accuracy",
           "retrieval_recall"]


@torch.no_grad()
def extract_features(
    encoder: torch.nn.Module,
    images: np.ndarray,
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Encode uint8 images [N, H, W, 3] with ``encoder`` in eval mode -> float features [N, D]."""
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack(
            [transform(Image.fromarray(im)) for im in images[start : start + batch_size]]
        )
        chunks.append(encoder(batch.to(device)).float().cpu())
    encoder.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def cached_accuracy(kind: str, fingerprint: str, dataset: str,
                    compute: Callable[[], float]) -> float:
    """``compute()``, kept in the cache directory under ``<kind>-<fingerprint>.json``.

    For baselines that depend on the data alone (a probe on raw pixels or on log-mel
    statistics): computed once per data, not once per run. ``fingerprint`` must identify the
    data and the settings.
    """
    path = default_cache_dir() / f"{kind}-{fingerprint}.json"
    if path.exists():
        return float(json.loads(path.read_text())["accuracy"])
    accuracy = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": accuracy, "dataset": dataset}))
    return accuracy


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    test_features: torch.Tensor,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
) -> float:
    """Weighted kNN top-1 accuracy on L2-normalised features (lightly's ``knn_predict``)."""
    bank = torch.nn.functional.normalize(train_features, dim=1).t().contiguous()
    queries = torch.nn.functional.normalize(test_features, dim=1)
    bank_labels = torch.tensor(np.asarray(train_labels), dtype=torch.long)
    pred = knn_predict(
        queries, bank, bank_labels, num_classes, knn_k=min(k, bank.shape[1]), knn_t=temperature
    )
    return float((pred[:, 0].numpy() == np.asarray(test_labels)).mean())


def linear_probe_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    max_iter: int = 100,
    seed: int = 0,
) -> float:
    """Top-1 accuracy of a multinomial logistic regression on standardised frozen features.

    L-BFGS is stopped after ``max_iter`` iterations whether or not it has converged: on a few
    thousand samples full convergence takes ~30x longer for a change in the third decimal,
    and early stopping acts as the usual mild regularisation of a linear probe.
    """
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(np.asarray(train_features), np.asarray(train_labels))
    return float(probe.score(np.asarray(test_features), np.asarray(test_labels)))
