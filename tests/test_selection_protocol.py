"""Model selection (``fedssl select-best``) scores on a held-out part of the *train* split.

The test split is what the final report uses; choosing a round by it would report a number
that was picked on. Every task's ``selection_evaluate`` must load the train split only, name
its scores ``val-…``, and hold out a seeded quarter that is disjoint from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from fedssl.clients import get_task
from fedssl.clients.base import seed_global
from fedssl.clients.data import PartitionedData
from fedssl.config import RunConfig
from fedssl.experiments.selection import default_metric

CONFIGS = {
    "image-ssl": dict(task="image-ssl", model="small-cnn", eval_max_samples=64),
    "image-classification": dict(task="image-classification", model="small-cnn",
                                 eval_max_samples=64),
    "audio-ssl": dict(task="audio-ssl", dataset="spoken-digits",
                      model="audio-inceptionnext-tiny", eval_max_samples=96),
}
# The first key is what select-best ranks by when no --metric is given.
DEFAULT_METRIC = {
    "image-ssl": "val-knn-accuracy",
    "image-classification": "val-accuracy",
    "audio-ssl": "val-retrieval-r1",
}


def _setup(name: str, **overrides) -> tuple:
    task = get_task(name)
    cfg = RunConfig(**(CONFIGS[name] | overrides))
    seed_global(cfg.seed)
    return task, cfg, task.build_model(cfg)


def _score(task, model, cfg) -> dict[str, float]:
    seed_global(cfg.seed)  # as score_rounds does before every round
    return task.selection_evaluate(model, cfg)


@pytest.fixture
def train_only(monkeypatch):
    """Make the tasks' data refuse the test split; returns the split names asked for."""
    from fedssl.clients.audio_data import AUDIO_DATA
    from fedssl.clients.image_data import IMAGE_DATA

    asked: list[str] = []
    for data in (IMAGE_DATA, AUDIO_DATA):
        load = data.load

        def guarded(key, split, load=load):
            asked.append(split)
            if split != "train":
                raise AssertionError(f"selection asked for the {split!r} split")
            return load(key, split)

        monkeypatch.setattr(data, "load", guarded)
    return asked


# ------------------------------------------------------------------ the tasks
@pytest.mark.parametrize("name", ["image-ssl", "image-classification", "audio-ssl"])
def test_selection_never_loads_the_test_split_and_names_val_scores(name, train_only):
    task, cfg, model = _setup(name)
    train_only.clear()  # building a classifier reads the train split's class count
    scores = _score(task, model, cfg)
    assert train_only and set(train_only) == {"train"}
    assert scores and all(k.startswith("val-") for k in scores)
    assert next(iter(scores)) == DEFAULT_METRIC[name]
    assert default_metric(pd.DataFrame([{"round": 0, **scores}])) == DEFAULT_METRIC[name]
    accuracy = scores[DEFAULT_METRIC[name]]
    assert 0.0 <= accuracy <= 1.0


def test_the_test_split_is_still_what_central_evaluation_uses(train_only):
    # The guard above does bite: the monitor that the report uses asks for "test".
    task, cfg, model = _setup("image-ssl")
    with pytest.raises(AssertionError, match="'test' split"):
        task.central_evaluate(model, cfg)


def test_image_ssl_keys_and_image_classification_keys():
    task, cfg, model = _setup("image-ssl")
    assert list(_score(task, model, cfg)) == ["val-knn-accuracy"]
    task, cfg, model = _setup("image-classification")
    assert list(_score(task, model, cfg)) == ["val-accuracy", "val-loss"]


@pytest.mark.parametrize("name", ["image-ssl", "image-classification"])
def test_same_seed_gives_the_same_scores(name):
    task, cfg, model = _setup(name)
    first = _score(task, model, cfg)
    assert _score(task, model, cfg) == first
    # A fresh task object and model from the same seed: the same numbers again.
    task2, cfg2, model2 = _setup(name)
    assert _score(task2, model2, cfg2) == first


def test_image_ssl_queries_a_held_out_quarter_against_the_rest(monkeypatch):
    task, cfg, model = _setup("image-ssl")
    seen = []

    def monitor(f_bank, bank, f_query, query, cfg, prefix=""):
        seen.append((len(bank), len(query), prefix))
        return {f"{prefix}knn-accuracy": 0.5}

    monkeypatch.setattr(task, "monitor", monitor)
    assert _score(task, model, cfg) == {"val-knn-accuracy": 0.5}
    assert seen == [(48, 16, "val-")]  # 64 capped train samples: 3/4 bank, 1/4 queries


def test_image_classification_scores_the_held_out_quarter_only(monkeypatch):
    import fedssl.clients.image_classification as module
    from fedssl.clients.image_data import IMAGE_DATA

    task, cfg, model = _setup("image-classification")
    _, held_out = IMAGE_DATA.selection_split(cfg)
    sizes = []
    evaluate = module.evaluate_classifier

    def recording(model, images, labels, **kw):
        sizes.append(len(labels))
        assert np.array_equal(images, held_out.images) and np.array_equal(labels,
                                                                          held_out.labels)
        return evaluate(model, images, labels, **kw)

    monkeypatch.setattr(module, "evaluate_classifier", recording)
    _score(task, model, cfg)
    assert sizes == [16]


# ------------------------------------------------------------------ the split itself
@dataclass
class Rows:
    """A stand-in split: row ids, labels and optional groups."""

    ids: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    num_classes: int = 3

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: np.ndarray) -> Rows:
        idx = np.asarray(indices)
        return Rows(self.ids[idx], self.labels[idx],
                    None if self.groups is None else self.groups[idx], self.num_classes)


def _data(n: int, groups: np.ndarray | None) -> tuple[PartitionedData, list[str]]:
    asked: list[str] = []

    def load(key, split):
        asked.append(split)
        return Rows(np.arange(n), np.arange(n) % 3, groups)

    return PartitionedData(lambda cfg: cfg.dataset, load), asked


@pytest.mark.parametrize("groups", [None, np.arange(40) % 2, np.arange(40) % 8])
def test_selection_split_is_disjoint_complete_seeded_and_train_only(groups):
    data, asked = _data(40, groups)
    cfg = RunConfig(seed=5)
    rest, held = data.selection_split(cfg)
    assert set(asked) == {"train"}
    assert not set(rest.ids) & set(held.ids)
    assert sorted([*rest.ids, *held.ids]) == list(range(40))
    again_rest, again_held = data.selection_split(RunConfig(seed=5))
    assert np.array_equal(again_held.ids, held.ids) and np.array_equal(again_rest.ids, rest.ids)
    other = data.selection_split(RunConfig(seed=6))[1]
    if groups is not None and len(np.unique(groups)) >= 4:
        # By group: a quarter of the 8 groups, none on both sides.
        assert len(np.unique(held.groups)) == 2
        assert not set(held.groups) & set(rest.groups)
        assert len(held) == 10
    else:
        # Fewer than four groups (or none): a quarter of the samples.
        assert len(held) == 10
    assert not np.array_equal(other.ids, held.ids)


def test_selection_split_respects_the_eval_cap():
    data, _ = _data(200, None)
    rest, held = data.selection_split(RunConfig(seed=0, eval_max_samples=80))
    assert (len(rest), len(held)) == (60, 20)
    capped = data.eval_split(RunConfig(seed=0, eval_max_samples=80), "train")
    assert sorted([*rest.ids, *held.ids]) == sorted(capped.ids)
