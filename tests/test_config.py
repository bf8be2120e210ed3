"""Run config: defaults in pyproject agree with RunConfig; bad values fail with clear messages."""

import dataclasses
import json

import pytest

from fedssl.compose import validate
from fedssl.config import ConfigError, RunConfig, load_defaults, parse_overrides


def test_pyproject_defaults_match_dataclass_defaults():
    defaults = load_defaults()
    fields = {f.name.replace("_", "-"): f.default for f in dataclasses.fields(RunConfig)}
    assert defaults == fields


def test_round_trip_through_flower_run_config():
    cfg = RunConfig.from_run_config(load_defaults())
    assert RunConfig.from_run_config(cfg.to_run_config()) == cfg


def test_int_is_accepted_for_float_key():
    cfg = RunConfig.from_run_config({"lr": 1})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    ("key", "value", "expected_fragments"),
    [
        ("strategy", "nosuch", ["strategy='nosuch'", "fedavg", "fedyogi", "krum"]),
        ("model", "resnet1000", ["model='resnet1000'", "small-cnn", "resnet18", "vit-tiny"]),
        ("ssl-method", "moco", ["ssl-method='moco'", "simclr", "byol", "simsiam", "barlowtwins"]),
        ("dataset", "mnist", ["dataset='mnist'", "embedded-digits", "cifar10", "tiny-imagenet"]),
        ("partitioner", "zipf", ["partitioner='zipf'", "iid", "dirichlet", "shard"]),
        ("num-server-rounds", 0, ["num-server-rounds=0", ">= 1"]),
        ("fraction-train", 1.5, ["fraction-train=1.5", "<= 1.0"]),
        ("dirichlet-alpha", 0.0, ["dirichlet-alpha=0.0", "> 0.0"]),
        ("lr", "fast", ["lr='fast'", "expected float"]),
        ("wandb-mode", "cloud", ["auto", "offline", "online", "disabled"]),
        ("server-optimizer", "sgd", ["none", "fedavgm", "fedadam", "fedyogi", "fedadagrad"]),
        ("ldawa-weighting", "sqrt", ["uniform", "num-examples"]),
        ("fedvssl-alpha", 1.1, ["fedvssl-alpha=1.1", "<= 1.0"]),
        ("fedvssl-beta", -0.5, ["fedvssl-beta=-0.5", ">= 0.0"]),
    ],
)
def test_invalid_values_name_key_value_and_choices(key, value, expected_fragments):
    # Names are checked against the registries (validate); a strategy's own keys with it.
    context = {"strategy": "ldawa"} if key == "ldawa-weighting" else {}
    with pytest.raises(ConfigError) as err:
        validate(RunConfig.from_run_config(context | {key: value}))
    for fragment in expected_fragments:
        assert fragment in str(err.value)


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="unknown run-config key"):
        RunConfig.from_run_config({"num-rounds": 3})


def test_missing_data_directory_for_real_dataset(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(RunConfig.from_run_config({"dataset": "cifar10",
                                            "data-dir": str(tmp_path / "nope")}))
    assert "data-dir" in str(err.value) and "nope" in str(err.value)


def test_resume_from_needs_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint"):
        RunConfig.from_run_config({"resume-from": str(tmp_path)})


def test_min_available_below_min_train_is_refused():
    with pytest.raises(ConfigError, match="min-available-nodes"):
        RunConfig.from_run_config({"min-train-nodes": 5, "min-available-nodes": 2})


def test_parse_overrides_reads_toml_values_and_bare_strings():
    parsed = parse_overrides(["lr=0.1", "num-server-rounds=3", "strategy=fedyogi",
                              'run-name="a b"', "linear-probe=false"])
    assert parsed == {"lr": 0.1, "num-server-rounds": 3, "strategy": "fedyogi",
                      "run-name": "a b", "linear-probe": False}
    with pytest.raises(ConfigError):
        parse_overrides(["lr"])


def test_resume_of_a_finished_run_is_refused_before_anything_starts(tmp_path):
    from fedssl.callbacks import rng_state
    from fedssl.launch import resolve_config
    from fedssl.tracking import save_checkpoint

    save_checkpoint(tmp_path, {"round": 3, "arrays": {}, "strategy-state": {},
                               "rng": rng_state()})
    (tmp_path / "config.json").write_text(json.dumps(load_defaults()))  # as a run writes it
    with pytest.raises(ConfigError, match="already finished 3 rounds"):
        resolve_config({}, {"resume-from": str(tmp_path), "num-server-rounds": 3},
                       default_root=tmp_path)
    cfg = resolve_config({}, {"resume-from": str(tmp_path), "num-server-rounds": 4},
                         default_root=tmp_path)
    assert cfg.output_dir == str(tmp_path.resolve())


def test_server_optimizer_only_with_a_strategy_that_replaces_the_mean():
    cfg = validate(RunConfig(strategy="fedvssl", server_optimizer="fedadam"))
    assert cfg.server_optimizer == "fedadam"
    with pytest.raises(ConfigError, match="applies to the strategies ldawa, fedvssl"):
        validate(RunConfig(strategy="fedprox", server_optimizer="fedyogi"))


def test_experiment_grid_tables_set_several_keys_and_the_client_count(tmp_path):
    from fedssl.experiments.spec import load_experiment

    path = tmp_path / "exp.toml"
    path.write_text(
        '[experiment]\nname = "t"\nseeds = [0, 1]\nnum-supernodes = 10\n'
        '[grid]\naggregation = [{ name = "fedavg", strategy = "fedavg" },\n'
        '  { name = "ldawa+yogi", strategy = "ldawa", server-optimizer = "fedyogi" }]\n'
        'setting = [{ name = "cross-device", num-supernodes = 100, fraction-train = 0.1 }]\n'
        'local-epochs = [1, 5]\n'
    )
    variants = load_experiment(path).variants()
    assert len(variants) == 2 * 1 * 2 * 2
    v = variants[2 * 2 + 1]  # ldawa+yogi, cross-device, local-epochs 1, seed 1
    assert v.labels == {"aggregation": "ldawa+yogi", "setting": "cross-device",
                        "local-epochs": 1, "seed": 1}
    assert v.overrides == {"strategy": "ldawa", "server-optimizer": "fedyogi",
                           "fraction-train": 0.1, "local-epochs": 1, "seed": 1}
    assert v.num_supernodes == 100
    assert v.name == "aggregation=ldawa+yogi,setting=cross-device,local-epochs=1,seed=1"


@pytest.mark.parametrize(
    ("grid", "fragment"),
    [
        ('x = [{ name = "a", nosuch-key = 1 }]', "unknown keys ['nosuch-key']"),
        ('x = [{ strategy = "fedavg" }, 3]', "mixes tables and plain values"),
        ("nosuch-key = [1, 2]", "unknown run-config key 'nosuch-key'"),
    ],
)
def test_experiment_grid_errors_name_the_problem(tmp_path, grid, fragment):
    from fedssl.experiments.spec import load_experiment

    path = tmp_path / "exp.toml"
    path.write_text(f"[grid]\n{grid}\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert fragment in str(err.value)


def test_report_of_a_directory_without_runs_is_refused(tmp_path):
    from fedssl.cli import main

    spec = tmp_path / "exp.toml"
    spec.write_text("[grid]\nseed = [0]\n")
    assert main(["experiment", str(spec), "--report", str(tmp_path)]) == 2


def test_the_schema_knows_no_registry_names():
    """A name is only looked up by the composer: the schema alone accepts any string."""
    cfg = RunConfig.from_run_config({"model": "not-registered-yet"})
    with pytest.raises(ConfigError, match="model='not-registered-yet' is not valid"):
        validate(cfg)


def test_shared_defaults_have_one_value():
    """Options that the model API and the run config both default agree (one default)."""
    from fedssl.models import SSLOptions

    run = RunConfig()
    options = SSLOptions()
    assert (options.projection_dim, options.hidden_dim, options.temperature,
            options.byol_momentum, options.num_segments) == (
        run.projection_dim, run.hidden_dim, run.temperature, run.byol_momentum,
        run.clip_order_segments)
