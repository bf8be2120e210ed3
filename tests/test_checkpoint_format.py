"""Checkpoints and kept models hold no pickle: loading one never runs code from the file."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from flower_fakes import FakeGrid, record, reply, set_task_identity
from flwr.app import ArrayRecord, ConfigRecord

from fedssl.callbacks import rng_state, set_rng_state
from fedssl.strategies import build_strategy, restore_strategy_state, strategy_state
from fedssl.strategies.registry import StrategyParams
from fedssl.tracking import (
    CHECKPOINT_FILE,
    CheckpointError,
    has_checkpoint,
    list_round_models,
    load_checkpoint,
    load_round_model,
    load_tensors,
    load_tensors_metadata,
    save_checkpoint,
    save_round_model,
    save_tensors,
)
from fedssl.tracking import checkpoint as ckpt

F32 = np.float32
GLOBAL = {"w": np.array([[1.0, 0.0], [0.5, -1.0]], F32), "b": np.array([0.1, 0.2], F32),
          "n": np.array(4, np.int64)}
CLIENTS = [{"w": GLOBAL["w"] + d, "b": GLOBAL["b"] - d, "n": np.array(6, np.int64)}
           for d in (0.5, -0.25, 1.0)]

# Each kind of state Flower's strategies keep: FedAdam/FedYogi (m_t, v_t and current_arrays:
# dicts of numpy arrays and numpy scalars), FedAvgM (momentum_vector: a list of arrays and
# numpy scalars; current_arrays: an ArrayRecord), and both nested in L-DAWA / FedVSSL.
STRATEGIES = [("fedadam", "none"), ("fedavgm", "none"), ("fedadagrad", "none"),
              ("ldawa", "fedyogi"), ("fedvssl", "fedavgm"), ("fedavg", "none")]


@pytest.fixture(autouse=True)
def _task_identity():
    set_task_identity()


def _params(optimizer: str) -> StrategyParams:
    return StrategyParams(server_optimizer=optimizer, min_train_nodes=1, min_available_nodes=1,
                          ldawa_warmup_rounds=0)


def _round(strategy, rnd: int, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    list(strategy.configure_train(rnd, record(arrays), ConfigRecord(), FakeGrid([1, 2, 3])))
    replies = [reply(i + 1, c, {"num-examples": 10 * (i + 1), "train-loss": 1.0 + i,
                                "partition-id": i}) for i, c in enumerate(CLIENTS)]
    aggregated, _ = strategy.aggregate_train(rnd, replies)
    return {k: a.numpy() for k, a in aggregated.items()}


def _trained(name: str, optimizer: str) -> tuple[object, dict[str, np.ndarray]]:
    """A strategy after two rounds, and the global arrays it produced."""
    strategy = build_strategy(name, _params(optimizer))
    arrays = GLOBAL
    for rnd in (1, 2):
        arrays = _round(strategy, rnd, arrays)
    return strategy, arrays


def _model_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(36, 2))
    return model.state_dict()  # float32 weights and an int64 num_batches_tracked


def _state(strategy=None, rnd: int = 2) -> dict:
    return {"round": rnd, "arrays": _model_state(),
            "strategy-state": strategy_state(strategy) if strategy is not None else {},
            "rng": rng_state(), "wandb-id": "abc123"}


def assert_same(a, b, where: str = "") -> None:
    """Equal values of the same types, dtypes and shapes, all the way down (an OrderedDict,
    such as a state_dict, comes back as a dict with the same order)."""
    if isinstance(a, dict):
        assert type(b) is dict, f"{where}: {type(b)}"
    else:
        assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert torch.equal(a, b), where
    elif isinstance(a, ArrayRecord):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key].numpy(), b[key].numpy(), f"{where}/{key}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(("name", "optimizer"), STRATEGIES)
def test_strategy_state_round_trips_and_the_resumed_strategy_continues_identically(
        tmp_path, name, optimizer):
    strategy, arrays = _trained(name, optimizer)
    state = _state(strategy)
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    assert_same(state, loaded)

    resumed = build_strategy(name, _params(optimizer))
    restore_strategy_state(resumed, loaded["strategy-state"])
    assert_same(strategy_state(strategy), strategy_state(resumed))
    # The next round is the same whether the strategy ran on or was restored from disk.
    assert_same(_round(strategy, 3, arrays), _round(resumed, 3, arrays))


def test_the_states_of_flower_strategies_are_the_kinds_the_format_was_built_for():
    adam = strategy_state(_trained("fedadam", "none")[0])
    assert isinstance(adam["m_t"]["w"], np.ndarray) and isinstance(adam["v_t"]["n"], np.generic)
    momentum = strategy_state(_trained("fedavgm", "none")[0])
    assert isinstance(momentum["current_arrays"], ArrayRecord)
    assert isinstance(momentum["momentum_vector"], list)
    nested = strategy_state(_trained("ldawa", "fedyogi")[0])
    assert set(nested["base"]["__strategy__"]) >= {"m_t", "v_t"}


def test_rng_states_come_back_exactly_and_replay_the_same_numbers(tmp_path):
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    random.gauss(0, 1)  # leaves a cached gaussian in both
    np.random.randn()
    state = _state()
    save_checkpoint(tmp_path, state)
    expected = (random.random(), np.random.rand(), torch.rand(1), random.gauss(0, 1),
                np.random.randn())

    loaded = load_checkpoint(tmp_path)
    rng = loaded["rng"]
    assert type(rng["python"]) is tuple and rng["python"] == state["rng"]["python"]
    assert type(rng["numpy"]) is tuple and rng["numpy"][0] == "MT19937"
    assert rng["numpy"][1].dtype == np.uint32 and rng["numpy"][1].shape == (624,)
    assert rng["torch"].dtype == torch.uint8
    assert_same(state["rng"], rng)
    set_rng_state(rng)
    again = (random.random(), np.random.rand(), torch.rand(1), random.gauss(0, 1),
             np.random.randn())
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])
    assert again[3:] == expected[3:]


def test_values_of_every_supported_kind_round_trip(tmp_path):
    extra = {
        "tensors": {"bf16": torch.randn(3).bfloat16(), "half": torch.randn(2, 2).half(),
                    "bool": torch.tensor([True, False]), "scalar": torch.tensor(7),
                    "empty": torch.zeros(0, 3), "transposed": torch.randn(3, 2).t(),
                    "u8": torch.arange(5, dtype=torch.uint8)},
        "numpy": {"f64": np.linspace(0, 1, 4), "i32": np.arange(3, dtype=np.int32),
                  "scalar": np.float32(2.5), "bool": np.bool_(True), "0d": np.array(3.0),
                  "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3))},
        "plain": [None, True, 3, -0.0, float("inf"), float("nan"), "text", (1, (2, [3]))],
        "$tagged": {"$tensor": "not a tensor", "$x": [1]},
        "ünïcode/key": 1,
    }
    state = _state() | {"strategy-state": extra}
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    expected = dict(extra)
    expected["tensors"] = {k: v.contiguous() for k, v in extra["tensors"].items()}
    assert_same(expected, loaded["strategy-state"])
    fortran = loaded["strategy-state"]["numpy"]["fortran"]
    assert fortran.flags.writeable and fortran.flags.c_contiguous
    fortran[0, 0] = 9.0  # arrays and tensors own their memory: restored state can be updated
    loaded["arrays"]["0.weight"].add_(1.0)


def test_each_save_leaves_one_consistent_pair_and_nothing_else(tmp_path):
    for rnd in (1, 2, 3):
        save_checkpoint(tmp_path, _state(rnd=rnd) | {"arrays": {"w": torch.full((2,), rnd)}})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[1] == CHECKPOINT_FILE, names
    assert ckpt._TENSORS_FILE.match(names[0])
    assert load_checkpoint(tmp_path)["round"] == 3
    assert has_checkpoint(tmp_path) and not has_checkpoint(tmp_path / "elsewhere")


def test_a_crash_before_the_json_is_replaced_keeps_the_previous_checkpoint(tmp_path,
                                                                           monkeypatch):
    save_checkpoint(tmp_path, _state(rnd=1))
    real_replace = os.replace

    def crash_on_json(src, dst):
        if Path(dst).name == CHECKPOINT_FILE:
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", crash_on_json)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, _state(rnd=2) | {"arrays": {"w": torch.ones(3)}})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path)["round"] == 1  # the old pair, untouched
    assert not list(tmp_path.glob(".*.tmp"))
    save_checkpoint(tmp_path, _state(rnd=2))  # the next save clears the orphan array file
    assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == 1


def test_save_refuses_an_incomplete_or_unstorable_state_and_writes_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="'arrays'"):
        save_checkpoint(tmp_path, {"round": 3})
    with pytest.raises(CheckpointError, match="strategy-state/opt/fn"):
        save_checkpoint(tmp_path, _state() | {"strategy-state": {"opt": {"fn": object()}}})
    with pytest.raises(CheckpointError, match="complex"):
        save_checkpoint(tmp_path, _state() | {"strategy-state": {"z": np.zeros(2, complex)}})
    with pytest.raises(CheckpointError, match="rng"):
        save_checkpoint(tmp_path, _state() | {"rng": {"python": (1, 2), "numpy": None,
                                                      "torch": torch.zeros(1)}})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- bad files
def _saved(tmp_path: Path) -> tuple[Path, Path, dict]:
    save_checkpoint(tmp_path, _state())
    path = tmp_path / CHECKPOINT_FILE
    document = json.loads(path.read_text())
    return path, tmp_path / document["tensors"]["file"], document


def _rewrite(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document))


def _point_at(path: Path, document: dict, tensors: Path, data: bytes) -> None:
    """Give ``tensors`` the bytes ``data`` and make the JSON's size and digest match them."""
    import hashlib

    tensors.write_bytes(data)
    document["tensors"] |= {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    _rewrite(path, document)


def _drop_round(path, tensors, document):
    del document["state"]["round"]
    _rewrite(path, document)


def _round_is_text(path, tensors, document):
    document["state"]["round"] = "three"
    _rewrite(path, document)


def _arrays_is_a_list(path, tensors, document):
    document["state"]["arrays"] = [1, 2]
    _rewrite(path, document)


def _unknown_array(path, tensors, document):
    document["state"]["arrays"] = {"w": {"$tensor": "nope"}}
    _rewrite(path, document)


def _bad_rng(path, tensors, document):
    document["state"]["rng"]["python"] = [3, [1, 2], None]
    _rewrite(path, document)


def _unknown_tag(path, tensors, document):
    document["state"]["strategy-state"] = {"$eval": "__import__('os')"}
    _rewrite(path, document)


def _escaping_file_name(path, tensors, document):
    document["tensors"]["file"] = "../checkpoint-0123456789abcdef.safetensors"
    _rewrite(path, document)


def _nested_too_deeply(path, tensors, document):
    document["state"]["strategy-state"] = {"deep": "DEEP"}
    path.write_text(json.dumps(document).replace('"DEEP"', "[" * 900 + "]" * 900))


def _newer_version(path, tensors, document):
    document["version"] = 99
    _rewrite(path, document)


BAD_JSON = {
    "garbage": (lambda p, t, d: p.write_bytes(b"\x00\xffnot json at all\x13"), "not JSON"),
    "empty": (lambda p, t, d: p.write_bytes(b""), "empty"),
    "truncated": (lambda p, t, d: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
                  "not JSON"),
    "a JSON list": (lambda p, t, d: p.write_text("[1, 2]"), "not a fedssl checkpoint"),
    "missing round": (_drop_round, "'round'"),
    "round of the wrong type": (_round_is_text, "'round' is 'three'"),
    "arrays of the wrong type": (_arrays_is_a_list, "'arrays' is not a state_dict"),
    "an array the file lacks": (_unknown_array, "'nope'"),
    "an rng state random.setstate refuses": (_bad_rng, "rng/python"),
    "an unknown tag": (_unknown_tag, "unknown tags"),
    "an array file outside the run directory": (_escaping_file_name, "does not name"),
    "a newer format version": (_newer_version, "version 99"),
    "nested too deeply": (_nested_too_deeply, "nested too deeply"),
}
BAD_TENSORS = {
    "tensors truncated": (lambda p, t, d: t.write_bytes(t.read_bytes()[:-10]), "half-written"),
    "tensors damaged": (lambda p, t, d: t.write_bytes(bytes(reversed(t.read_bytes()))),
                        "half-written"),
    "tensors missing": (lambda p, t, d: t.unlink(), "missing"),
    "tensors empty, digest matching": (lambda p, t, d: _point_at(p, d, t, b""), "too short"),
    "tensors garbage, digest matching": (
        lambda p, t, d: _point_at(p, d, t, b"\x10" * 8 + b"garbage!" * 3), "not a safetensors"),
    "tensors cut after the header, digest matching": (
        lambda p, t, d: _point_at(p, d, t, t.read_bytes()[:200]), "truncated"),
}


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_a_bad_checkpoint_json_gives_one_typed_error_naming_the_file(tmp_path, case):
    path, tensors, document = _saved(tmp_path)
    spoil, expected = BAD_JSON[case]
    spoil(path, tensors, document)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    message = str(err.value)
    assert f"checkpoint {path} is unreadable" in message, message
    assert expected in message, message
    assert "give the run directory of an earlier run" in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("case", list(BAD_TENSORS))
def test_a_bad_array_file_gives_one_typed_error_naming_it(tmp_path, case):
    path, tensors, document = _saved(tmp_path)
    spoil, expected = BAD_TENSORS[case]
    spoil(path, tensors, document)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    message = str(err.value)
    assert str(tensors) in message and "is unreadable" in message, message
    assert expected in message, message


def test_no_checkpoint_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path)
    assert not has_checkpoint(tmp_path)


# ---------------------------------------------------------------------------- hostile files
class _Payload:
    """Unpickling this creates ``marker``: the stand-in for arbitrary code run on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"round": 1, "payload": _Payload(marker)})


def _evil_torch_file(path: Path, marker: Path) -> None:
    torch.save({"round": 1, "arrays": {"w": torch.zeros(1)}, "payload": _Payload(marker)}, path)


def test_the_payload_would_run_if_it_were_unpickled(tmp_path):
    control = tmp_path / "control"
    pickle.loads(_evil_pickle(control))  # proves that the payload is live
    assert control.exists()


def test_a_pickle_in_place_of_the_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path, _, _ = _saved(tmp_path)
    path.write_bytes(_evil_pickle(marker))
    with pytest.raises(CheckpointError, match="not JSON"):
        load_checkpoint(tmp_path)
    _evil_torch_file(path, marker)
    with pytest.raises(CheckpointError, match="not JSON"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_a_pickle_in_place_of_the_array_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path, tensors, document = _saved(tmp_path)
    _point_at(path, document, tensors, _evil_pickle(marker))  # even with a matching digest
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(tmp_path)
    _evil_torch_file(tensors, marker)
    _point_at(path, document, tensors, tensors.read_bytes())
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_a_pickled_checkpoint_of_an_earlier_version_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _evil_torch_file(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    assert str(tmp_path / "checkpoint.pt") in str(err.value) and "pickle" in str(err.value)
    assert not marker.exists()


def test_a_hostile_round_model_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    save_round_model(tmp_path, 1, {"w": torch.ones(2)})
    rounds = tmp_path / "rounds"
    (rounds / "round-0001.safetensors").write_bytes(_evil_pickle(marker))
    _evil_torch_file(rounds / "round-0002.pt", marker)  # an earlier version's file name
    assert [rnd for rnd, _ in list_round_models(tmp_path)] == [1, 2]
    for _, path in list_round_models(tmp_path):
        with pytest.raises(CheckpointError) as err:
            load_round_model(path)
        assert str(path) in str(err.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------- no pickle on disk
def _assert_no_pickle(path: Path) -> None:
    data = path.read_bytes()
    assert not data.startswith(b"\x80") and not data.startswith(b"PK\x03\x04"), path
    assert b"data.pkl" not in data and b"torch._utils" not in data, path
    if path.suffix == ".json":
        json.loads(data)
        return
    assert path.suffix == ".safetensors", path
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert [s for s, _ in spans] == [0] + [e for _, e in spans[:-1]]  # back to back
    assert (spans[-1][1] if spans else 0) == len(data) - 8 - size  # raw numbers to the end


def test_the_files_on_disk_contain_no_pickle(tmp_path):
    strategy, _ = _trained("fedavgm", "none")  # an ArrayRecord and a list of arrays
    save_checkpoint(tmp_path, _state(strategy))
    save_round_model(tmp_path, 1, _model_state())
    save_tensors(tmp_path / "final_model.safetensors", _model_state(), {"round": 1})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4
    for path in files:
        _assert_no_pickle(path)


# ---------------------------------------------------------------------------- model files
def test_round_models_are_safetensors_with_their_round(tmp_path):
    state = _model_state()
    path = save_round_model(tmp_path, 7, state)
    assert path.name == "round-0007.safetensors"
    assert load_tensors_metadata(path) == {"round": 7}
    assert_same(dict(state), load_round_model(path))


def test_round_models_of_an_earlier_version_are_still_listed_and_loaded(tmp_path):
    rounds = tmp_path / "rounds"
    rounds.mkdir()
    old = {"w": torch.randn(2, 2)}
    torch.save({"round": 1, "arrays": old}, rounds / "round-0001.pt")
    torch.save({"round": 2, "arrays": old}, rounds / "round-0002.pt")
    new = save_round_model(tmp_path, 2, {"w": torch.zeros(2, 2)})  # a resumed run redid it
    listed = list_round_models(tmp_path)
    assert listed == [(1, rounds / "round-0001.pt"), (2, new)]
    assert torch.equal(load_round_model(listed[0][1])["w"], old["w"])
    assert torch.equal(load_round_model(listed[1][1])["w"], torch.zeros(2, 2))


def test_save_tensors_round_trips_and_is_readable_as_plain_safetensors(tmp_path):
    tensors = {"w": torch.randn(4, 3).t(), "h": torch.randn(3).bfloat16(),
               "i": torch.arange(3, dtype=torch.int16), "b": torch.tensor(True)}
    path = save_tensors(tmp_path / "model.safetensors", tensors,
                        {"round": 3, "metric": "knn-accuracy", "score": 0.25})
    assert load_tensors_metadata(path) == {"round": 3, "metric": "knn-accuracy", "score": 0.25}
    assert_same({k: v.contiguous() for k, v in tensors.items()}, load_tensors(path))
    # The layout of the safetensors format, read by hand: u64 header length, JSON header,
    # little-endian bytes (widest dtypes first, so every tensor is aligned).
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert size % 8 == 0
    header = json.loads(data[8:8 + size])
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [3, 4]
    start, end = header["w"]["data_offsets"]
    raw = np.frombuffer(data[8 + size + start:8 + size + end], "<f4").reshape(3, 4)
    np.testing.assert_array_equal(raw, tensors["w"].numpy())
    with pytest.raises(CheckpointError, match="not a named tensor"):
        save_tensors(tmp_path / "x.safetensors", {"w": np.zeros(2)})
    with pytest.raises(CheckpointError, match="metadata is not JSON"):
        save_tensors(tmp_path / "x.safetensors", {}, {"f": object()})
