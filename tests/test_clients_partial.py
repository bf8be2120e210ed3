"""Partial weight updating: the backbone comes from the server, the rest stays the client's."""

import pytest
import torch
from flower_fakes import set_task_identity
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from fedssl.clients import ImageSSLTask
from fedssl.clients.partial import LOCAL_ARRAYS_KEY, merge_partial, split_by_prefix
from fedssl.config import RunConfig, load_defaults
from fedssl.flwr_app import client_app


def test_merge_takes_prefixed_keys_from_the_server_and_the_rest_from_the_client():
    server = {"backbone.w": torch.zeros(2), "head.w": torch.zeros(2), "head.n": torch.tensor(0)}
    local = {"head.w": torch.ones(2), "head.n": torch.tensor(5)}
    merged, used_local = merge_partial(server, local, "backbone.")
    assert used_local
    assert list(merged) == list(server)
    assert merged["backbone.w"] is server["backbone.w"]
    assert merged["head.w"] is local["head.w"] and merged["head.n"] is local["head.n"]
    # First round (nothing kept yet), or a kept state that no longer fits: all from the server.
    assert merge_partial(server, None, "backbone.") == (server, False)
    assert merge_partial(server, {"other": torch.ones(1)}, "backbone.") == (server, False)


def test_a_prefix_that_matches_nothing_names_the_existing_prefixes():
    with pytest.raises(ValueError, match=r"'encoder\.'.*backbone\., head\."):
        split_by_prefix({"backbone.w": torch.zeros(1), "head.w": torch.zeros(1)}, "encoder.")


# ---------------------------------------------------------------- through the ClientApp handler
def _context(**overrides) -> Context:
    cfg = load_defaults() | {"ssl-method": "byol", "max-local-steps": 1} | overrides
    return Context(run_id=1, node_id=7, node_config={"partition-id": 0, "num-partitions": 2},
                   state=RecordDict(), run_config=cfg)


def _instruction(state: dict, rnd: int) -> Message:
    return Message(RecordDict({"arrays": ArrayRecord(state),
                               "config": ConfigRecord({"server-round": rnd})}),
                   dst_node_id=7, message_type=MessageType.TRAIN)


@pytest.fixture
def seen_at_start(monkeypatch):
    """Replace local training by 'add 1 to every float array', recording the starting state."""
    seen = []

    def fake_train(self, model, cfg, **kwargs):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        with torch.no_grad():
            for value in model.state_dict().values():
                if value.is_floating_point():
                    value.add_(1.0)
        return {"train-loss": 0.5, "num-examples": 10, "partition-id": 0}

    monkeypatch.setattr(ImageSSLTask, "train", fake_train)
    set_task_identity()
    return seen


def _global_state(seed: int) -> dict:
    torch.manual_seed(seed)
    cfg = RunConfig.from_run_config(load_defaults() | {"ssl-method": "byol"})
    return ImageSSLTask().build_model(cfg).state_dict()


def test_client_keeps_its_heads_across_rounds_and_takes_the_server_backbone(seen_at_start):
    context = _context(**{"partial-prefix": "backbone."})
    g1, g2 = _global_state(1), _global_state(2)
    client_app.train(_instruction(g1, 1), context)
    assert set(context.state.array_records[LOCAL_ARRAYS_KEY]) == {
        k for k in g1 if not k.startswith("backbone.")}
    client_app.train(_instruction(g2, 2), context)
    start = seen_at_start[1]
    for key, value in g2.items():
        if key.startswith("backbone."):
            assert torch.equal(start[key], value), key
        elif value.is_floating_point():
            # the client's own array after round 1: g1 + 1, not the server's g2
            assert torch.equal(start[key], g1[key] + 1.0), key
    assert any(k.startswith("backbone_momentum.") for k in start)  # BYOL's target stays local


def test_without_a_prefix_the_client_loads_the_whole_server_model(seen_at_start):
    context = _context()
    g1, g2 = _global_state(1), _global_state(2)
    client_app.train(_instruction(g1, 1), context)
    client_app.train(_instruction(g2, 2), context)
    assert all(torch.equal(seen_at_start[1][k], v) for k, v in g2.items())
    assert LOCAL_ARRAYS_KEY not in context.state.array_records
