"""The catalogue is the registry: every declared entry loads, and where the implementation
also says something about itself (a task's modality, the image datasets' names, a
partitioner's parameters) it says what the catalogue says."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest

from fedssl import catalogue
from fedssl.catalogue import (
    DATASET_REGISTRY,
    MODELS,
    PARTITIONER_REGISTRY,
    SERVER_OPTIMIZERS,
    SSL_REGISTRY,
    STRATEGIES,
    TASKS,
)
from fedssl.common.registry import Registry

REGISTRIES = {"MODELS": MODELS, "SSL_REGISTRY": SSL_REGISTRY,
              "DATASET_REGISTRY": DATASET_REGISTRY, "PARTITIONER_REGISTRY": PARTITIONER_REGISTRY,
              "STRATEGIES": STRATEGIES, "SERVER_OPTIMIZERS": SERVER_OPTIMIZERS, "TASKS": TASKS}
DECLARED = [(label, name) for label, reg in REGISTRIES.items() for name in reg
            if reg.target(name) is not None]


@pytest.mark.parametrize(("label", "name"), DECLARED)
def test_every_declared_entry_loads(label, name):
    obj = REGISTRIES[label].get(name)
    assert callable(obj)


def test_every_built_in_entry_is_declared_and_the_package_re_exports_the_same_registries():
    from fedssl.clients import TASKS as CLIENT_TASKS
    from fedssl.datasets import DATASET_REGISTRY as DATA
    from fedssl.datasets.partitioners import PARTITIONER_REGISTRY as PARTS
    from fedssl.models import MODELS as NETS
    from fedssl.models import SSL_REGISTRY as SSL
    from fedssl.strategies import SERVER_OPTIMIZERS as OPTS
    from fedssl.strategies import STRATEGIES as STRATS

    pairs = zip((CLIENT_TASKS, DATA, PARTS, NETS, SSL, OPTS, STRATS),
                (TASKS, DATASET_REGISTRY, PARTITIONER_REGISTRY, MODELS, SSL_REGISTRY,
                 SERVER_OPTIMIZERS, STRATEGIES), strict=True)
    assert all(theirs is ours for theirs, ours in pairs)
    assert all(isinstance(reg, Registry) for reg in REGISTRIES.values())
    # In a fresh process: importing every implementation package adds no entry of its own.
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        from fedssl import catalogue
        regs = [catalogue.MODELS, catalogue.SSL_REGISTRY, catalogue.DATASET_REGISTRY,
                catalogue.PARTITIONER_REGISTRY, catalogue.STRATEGIES,
                catalogue.SERVER_OPTIMIZERS, catalogue.TASKS]
        before = [len(r) for r in regs]
        import fedssl.clients, fedssl.datasets.partitioners, fedssl.models, fedssl.strategies
        import fedssl.datasets.loader, fedssl.datasets.audio_loader, fedssl.compose
        print([len(r) for r in regs] == before,
              [n for r in regs for n in r if r.target(n) is None])
    """)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True []"


@pytest.mark.parametrize("name", ["audio-ssl", "image-classification", "image-ssl"])
def test_a_task_class_says_what_its_catalogue_line_says(name):
    from fedssl.clients.registry import task_tags

    cls = TASKS.get(name)
    assert cls.name == name
    tags = TASKS.tags(name)
    assert {k: tags[k] for k in task_tags(cls)} == task_tags(cls)
    assert set(tags) - set(task_tags(cls)) <= {"check"}


def test_the_image_audio_and_video_datasets_are_the_loaders_names():
    from fedssl.datasets.audio_loader import AUDIO_DATASETS
    from fedssl.datasets.loader import DATASETS
    from fedssl.datasets.video_loader import VIDEO_DATASETS

    assert DATASET_REGISTRY.names(modality="image") == DATASETS
    assert DATASET_REGISTRY.names(modality="audio") == tuple(AUDIO_DATASETS)
    assert DATASET_REGISTRY.names(modality="video") == VIDEO_DATASETS
    assert DATASET_REGISTRY.names(local_files=False) == ("spoken-digits", "embedded-digits",
                                                         "motion-digits")


@pytest.mark.parametrize("name", PARTITIONER_REGISTRY.names())
def test_a_partitioner_takes_the_parameters_its_tags_name(name):
    signature = inspect.signature(PARTITIONER_REGISTRY.get(name))
    keyword = [p for p, v in signature.parameters.items() if v.kind is v.KEYWORD_ONLY]
    tags = PARTITIONER_REGISTRY.tags(name)
    names = {"names"} if tags["needs_names"] else set()
    assert set(keyword) == {"seed", "groups", *names, *tags["params"]}
    assert tags["needs_groups"] == (name == "group")
    assert tags["needs_names"] == (name == "fedvssl-clients")


def test_the_model_tables_are_the_catalogues_names():
    from fedssl.models import BACKBONES, SSL_METHODS
    from fedssl.models.audio_inception import AUDIO_INCEPTION_VARIANTS
    from fedssl.models.lska import VAN_CONFIGS
    from fedssl.models.repopt import REPOPT_MODELS, REPOPT_MODES

    assert set(MODELS.names(kind="backbone", modalities="image")) == set(BACKBONES)
    assert set(SSL_REGISTRY.names(objective="feature-matching")) == set(SSL_METHODS)
    assert MODELS.names(family="repopt") == REPOPT_MODELS
    assert REPOPT_MODES == catalogue.models.REPOPT_MODES
    assert {n.removeprefix("van-lska-") for n in MODELS if n.startswith("van-lska-")} == set(
        VAN_CONFIGS)
    assert {n.removeprefix("audio-inceptionnext-") for n in MODELS
            if n.startswith("audio-inceptionnext-")} == set(AUDIO_INCEPTION_VARIANTS)
    assert set(MODELS.names(reparameterizable=True)) == {
        f"audio-rep-inceptionnext-{v}" for v in AUDIO_INCEPTION_VARIANTS}


def test_ssl_methods_declare_the_views_they_train_on():
    from fedssl.models import SSLModel

    for name in SSL_REGISTRY:
        cls = SSL_REGISTRY.get(name)
        feature_matching = SSL_REGISTRY.tags(name)["objective"] == "feature-matching"
        assert issubclass(cls, SSLModel) == feature_matching, name
        assert SSL_REGISTRY.tags(name)["views"] == (2 if feature_matching else 1)
        assert hasattr(cls, "from_options")


def test_strategy_checks_and_ldawa_weightings_are_the_strategies_own():
    from fedssl.strategies.ldawa import LDAWA_WEIGHTINGS
    from fedssl.strategies.registry import ACCEPTS_SERVER_OPTIMIZER

    assert LDAWA_WEIGHTINGS == catalogue.strategies.LDAWA_WEIGHTINGS
    assert ACCEPTS_SERVER_OPTIMIZER == ("ldawa", "fedvssl")
    for name in STRATEGIES:
        for key in ("check", "warn"):
            if fn := STRATEGIES.tags(name).get(key):
                assert fn.__module__ == "fedssl.catalogue.strategies", (name, key)
    assert SERVER_OPTIMIZERS.get("none") is STRATEGIES.get("fedavg")
