"""The round's instructions: which strategy client halves a train message calls for, and
what they give the task (optimiser, penalty, starting state, kept arrays)."""

import pytest
import torch

from fedssl.clients import LOCAL_RULES, RoundInstructions
from fedssl.clients.partial import PartialLoading
from fedssl.clients.proximal import ProximalRule
from fedssl.clients.repopt import RepOptMasks, RepOptSGD
from fedssl.config import RunConfig
from fedssl.models.repopt import build_repopt_model, default_scales


def test_a_plain_message_gives_plain_sgd_and_no_penalty():
    model = torch.nn.Linear(2, 1)
    instructions = RoundInstructions.from_message({"server-round": 3}, {}, RunConfig())
    assert instructions.server_round == 3 and instructions.rules == ()
    optimizer = instructions.optimizer(model, model.parameters(), lr=0.1, momentum=0.5)
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["momentum"] == 0.5
    assert instructions.penalty(model)() == 0.0
    assert instructions.keep(model.state_dict()) is None and instructions.reply_metrics() == {}


def test_proximal_mu_adds_the_proximal_term_anchored_at_the_start():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    instructions = RoundInstructions.from_message({"server-round": 1, "proximal-mu": 0.5}, {},
                                                  RunConfig())
    assert [type(r) for r in instructions.rules] == [ProximalRule]
    penalty = instructions.penalty(model)
    assert float(penalty()) == 0.0
    with torch.no_grad():
        model.weight.add_(torch.tensor([[1.0, -2.0]]))
    # mu/2 * ||w - w0||^2 = 0.25 * (1 + 4)
    assert float(penalty()) == pytest.approx(1.25)


def test_grad_scales_train_with_masked_sgd():
    model = build_repopt_model("repopt-vgg-tiny", mode="target", num_classes=10)
    scales = default_scales("repopt-vgg-tiny")
    instructions = RoundInstructions.from_message({"server-round": 1},
                                                  {"grad-scales": scales}, RunConfig())
    assert [type(r) for r in instructions.rules] == [RepOptMasks]
    optimizer = instructions.optimizer(model, model.parameters(), lr=0.01, momentum=0.0)
    assert isinstance(optimizer, RepOptSGD) and optimizer.grad_masks
    assert instructions.reply_metrics() == {"repopt-masks": 1}


def test_partial_prefix_starts_from_kept_arrays_and_keeps_the_rest():
    instructions = RoundInstructions.from_message(
        {"server-round": 2}, {}, RunConfig(partial_prefix="backbone."))
    assert [type(r) for r in instructions.rules] == [PartialLoading]
    server = {"backbone.w": torch.zeros(2), "head.w": torch.zeros(2)}
    state, used = instructions.start_state(server, {"head.w": torch.ones(2)})
    assert used and torch.equal(state["head.w"], torch.ones(2))
    assert torch.equal(state["backbone.w"], torch.zeros(2))
    assert instructions.reply_metrics() == {"partial-local-arrays": 1}
    assert set(instructions.keep(state)) == {"head.w"}


def test_the_builtin_rules_are_registered():
    assert set(LOCAL_RULES) == {"partial-loading", "proximal", "repopt-masks"}
