"""RepOpt-VGG / RepOpt-GhostNet: builds, scales, re-parameterisation and the RepOpt equivalence.

The key test (issue acceptance) trains a constant-scale (csla) block with plain SGD and its
plain re-parameterisation with RepOptSGD and the masks of ``repopt_grad_masks``, and checks
that the merged kernel of the first stays equal to the kernel of the second.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedssl.clients.repopt import RepOptSGD
from fedssl.models.repopt import (
    REPOPT_MODELS,
    REPOPT_MODES,
    RepOptBlock,
    ScaleLayer,
    build_repopt_model,
    check_scales,
    default_scales,
    ghost_grad_mask,
    init_target_from_scales,
    reparameterize_repopt,
    repopt_grad_masks,
    repopt_scales,
    vgg_grad_mask,
)
from fedssl.models.repopt_ghostnet import RepOptGhostModule
from fedssl.models.repopt_vgg import RepOptVGGBlock

TINY = ("repopt-vgg-tiny", "repopt-ghost-tiny")


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics/affine and random branch scales, so folding is really tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                for tensor, low, high in ((m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 1.5),
                                          (m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2)):
                    tensor.copy_(torch.empty(tensor.shape).uniform_(low, high, generator=gen))
            elif isinstance(m, ScaleLayer):
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.2, 1.5, generator=gen))
    return model


def _random_scales(reference: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.empty(v.shape).uniform_(0.2, 1.5, generator=gen)
            for k, v in reference.items()}


def _centre_identity(channels: int, in_per_group: int, dtype=torch.float32) -> torch.Tensor:
    kernel = torch.zeros(channels, in_per_group, 3, 3, dtype=dtype)
    for c in range(channels):
        kernel[c, 0 if in_per_group == 1 else c, 1, 1] = 1.0
    return kernel


def _col(scale: torch.Tensor) -> torch.Tensor:
    return scale.reshape(-1, 1, 1, 1)


def _merged_vgg(block: RepOptVGGBlock) -> torch.Tensor:
    """W' = s3·W3 + s1·pad(W1) [+ s_id·I] of a csla/hs block, written out independently."""
    w3, w1 = block.conv_3x3.weight.detach(), block.conv_1x1.weight.detach()
    kernel = (_col(block.scale_3x3.weight.detach()) * w3
              + _col(block.scale_1x1.weight.detach()) * F.pad(w1, [1, 1, 1, 1]))
    if block.has_identity:
        kernel = kernel + _col(block.scale_identity.weight.detach()) * _centre_identity(
            block.out_channels, block.in_channels, w3.dtype)
    return kernel


def _merged_ghost(module: RepOptGhostModule) -> torch.Tensor:
    w = module.cheap_conv.weight.detach()
    return (_col(module.scale_dw.weight.detach()) * w
            + _col(module.scale_identity.weight.detach())
            * _centre_identity(module.out_channels, 1, w.dtype))


# -- building ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", REPOPT_MODES)
@pytest.mark.parametrize("name", REPOPT_MODELS)
def test_every_name_and_mode_builds_and_classifies(name, mode):
    torch.manual_seed(0)
    model = build_repopt_model(name, mode=mode, num_classes=10).eval()
    assert (model.arch, model.mode, model.num_classes) == (name, mode, 10)
    assert {m.mode for m in model.modules() if isinstance(m, RepOptBlock)} == {mode}
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_bad_name_mode_or_num_classes_is_refused_with_the_valid_values():
    with pytest.raises(ValueError, match=r"'repopt-vgg-b2'.*repopt-vgg-b1, repopt-vgg-tiny, "
                                         r"repopt-ghost-0.5x, repopt-ghost-tiny"):
        build_repopt_model("repopt-vgg-b2", mode="target", num_classes=10)
    with pytest.raises(ValueError,
                       match=r"mode must be one of 'rep', 'csla', 'hs', 'target'; got 'org'"):
        build_repopt_model("repopt-ghost-tiny", mode="org", num_classes=10)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        build_repopt_model("repopt-vgg-tiny", mode="target", num_classes=0)
    with pytest.raises(ValueError, match="valid names"):
        default_scales("resnet18")


def test_identity_branches_and_strides_of_the_vgg_layout():
    model = build_repopt_model("repopt-vgg-tiny", mode="rep", num_classes=10)
    assert model.stage0.stride == 2 and not model.stage0.has_identity
    for stage in (model.stage1, model.stage2, model.stage3, model.stage4):
        assert stage[0].stride == 2 and not hasattr(stage[0], "bn_identity")
        assert all(b.stride == 1 and hasattr(b, "bn_identity") for b in stage[1:])
    assert isinstance(model.linear, nn.Linear) and model.linear.in_features == 128


# -- scales -----------------------------------------------------------------------------------


def test_vgg_scale_init_and_which_scales_train():
    b1 = default_scales("repopt-vgg-b1")
    assert torch.equal(b1["stage0.scale_3x3"], torch.ones(64))
    assert torch.equal(b1["stage3.0.scale_1x1"], torch.ones(512))
    for i in (1, 2, 15):
        assert torch.allclose(b1[f"stage3.{i}.scale_3x3"], torch.full((512,), math.sqrt(2 / i)))
        assert torch.equal(b1[f"stage3.{i}.scale_identity"], torch.ones(512))
    assert "stage3.0.scale_identity" not in b1 and "stage4.0.scale_identity" not in b1
    for mode, constant in (("csla", False), ("hs", True)):
        model = build_repopt_model("repopt-vgg-tiny", mode=mode, num_classes=10)
        block = model.stage2[1]
        assert torch.allclose(block.scale_3x3.weight, torch.full((32,), math.sqrt(2.0)))
        assert torch.allclose(block.scale_1x1.weight, torch.full((32,), math.sqrt(2.0)))
        assert torch.equal(model.stage2[0].scale_3x3.weight, torch.ones(32))
        assert torch.equal(block.scale_identity.weight, torch.ones(32))
        assert block.scale_3x3.weight.requires_grad is constant
        assert block.scale_1x1.weight.requires_grad is constant
        assert block.scale_identity.weight.requires_grad  # trainable in csla too
        assert "stage2.1.scale_3x3.weight" in model.state_dict()  # constants are saved


def test_ghost_scale_init_and_which_scales_train():
    scales = default_scales("repopt-ghost-0.5x")

    def init(b: int, ghost: int) -> float:  # module index 2b-1 / 2b, init sqrt(2/(idx+1))
        return math.sqrt(2 / (2 * b - (2 - ghost) + 1))

    expected = {
        "blocks.0.0": 1,  # 8 -> 8, stride 1: first of a run
        "blocks.1.0": 1,  # stride 2 restarts the counter
        "blocks.2.0": 2,  # 12 -> 12 continues the run across the stage boundary
        "blocks.6.2": 4,  # 40 -> 40: third after blocks.5.0 (stride 2)
        "blocks.6.3": 1,  # 40 -> 56 changes width
        "blocks.6.4": 2,
    }
    for path, b in expected.items():
        for ghost in (1, 2):
            value = scales[f"{path}.ghost{ghost}.scale_dw"]
            assert torch.allclose(value, torch.full_like(value, init(b, ghost))), (path, ghost)
            assert torch.equal(scales[f"{path}.ghost{ghost}.scale_identity"],
                               torch.ones_like(value))
    for mode, constant in (("csla", False), ("hs", True)):
        model = build_repopt_model("repopt-ghost-tiny", mode=mode, num_classes=10)
        module = model.blocks[2][0].ghost2
        assert torch.allclose(module.scale_dw.weight, torch.full((12,), math.sqrt(2 / 5)))
        assert module.scale_dw.weight.requires_grad is constant
        assert module.scale_identity.weight.requires_grad
        assert all(torch.equal(v, default_scales("repopt-ghost-tiny")[k])
                   for k, v in repopt_scales(model).items())


@pytest.mark.parametrize("name", REPOPT_MODELS)
def test_scale_keys_line_up_across_modes(name):
    torch.manual_seed(0)
    defaults = default_scales(name)
    hs = build_repopt_model(name, mode="hs", num_classes=10)
    assert list(repopt_scales(hs)) == list(defaults)
    assert all(torch.equal(v, defaults[k]) for k, v in repopt_scales(hs).items())
    if name in TINY:
        csla = build_repopt_model(name, mode="csla", num_classes=10)
        assert list(repopt_scales(csla)) == list(defaults)
    target = build_repopt_model(name, mode="target", num_classes=10)
    check_scales(target, defaults)
    for key in defaults:  # every key names a block of the target model
        assert isinstance(target.get_submodule(key.rpartition(".")[0]), RepOptBlock)
    sample = "stage1.0.scale_3x3" if "vgg" in name else "blocks.1.0.ghost1.scale_dw"
    assert sample in defaults


def test_check_scales_names_what_is_wrong():
    target = build_repopt_model("repopt-vgg-tiny", mode="target", num_classes=10)
    scales = default_scales("repopt-vgg-tiny")
    missing = {k: v for k, v in scales.items() if k != "stage2.1.scale_identity"}
    with pytest.raises(ValueError, match=r"1 missing keys \[stage2.1.scale_identity\]"):
        check_scales(target, missing)
    with pytest.raises(ValueError, match=r"1 unexpected keys \[stage2.0.scale_identity\]"):
        check_scales(target, {**scales, "stage2.0.scale_identity": torch.ones(32)})
    with pytest.raises(ValueError, match=r"stage3.1.scale_1x1: \(63,\) \(expected \(64,\)\)"):
        check_scales(target, {**scales, "stage3.1.scale_1x1": torch.ones(63)})
    with pytest.raises(ValueError, match="missing keys"):  # another architecture's scales
        check_scales(target, default_scales("repopt-ghost-tiny"))
    with pytest.raises(ValueError, match="needs a model in mode 'csla' or 'hs'"):
        repopt_scales(target)
    with pytest.raises(ValueError, match="without any"):
        check_scales(nn.Linear(2, 2), scales)


# -- re-parameterisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode"),
    [(name, mode) for name in TINY for mode in ("rep", "csla", "hs")]
    + [("repopt-ghost-0.5x", "rep"), ("repopt-ghost-0.5x", "hs")],
)
def test_reparameterize_gives_an_equal_target_model(name, mode):
    torch.manual_seed(0)
    model = _randomize(build_repopt_model(name, mode=mode, num_classes=10)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = reparameterize_repopt(model)
    assert plain is not model and plain.mode == "target" and model.mode == mode
    assert not plain.training
    fresh = build_repopt_model(name, mode="target", num_classes=10)
    assert list(plain.state_dict()) == list(fresh.state_dict())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=1e-5)
    again = reparameterize_repopt(plain)  # idempotent: a copy of a target model
    assert again is not plain
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in again.state_dict().items())


def test_reparameterize_vgg_b1_rep():
    # 27 folded blocks with random BN statistics: in float32 the rounding error reaches ~3e-6
    # of the output scale, so compare in double to keep 1e-5 meaningful.
    torch.manual_seed(0)
    model = _randomize(build_repopt_model("repopt-vgg-b1", mode="rep", num_classes=10))
    model = model.double().eval()
    plain = reparameterize_repopt(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=1e-5)


def test_reparameterize_a_bare_block_in_train_mode_keeps_the_flag():
    block = _randomize(RepOptGhostModule(4, 6, relu=False, mode="rep"))
    plain = reparameterize_repopt(block)
    assert isinstance(plain, RepOptGhostModule) and plain.mode == "target" and plain.training
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), block.eval()(x), atol=1e-6, rtol=1e-5)


# -- the RepOpt equivalence (issue acceptance) ------------------------------------------------


def _sgd(model: nn.Module, momentum: float) -> torch.optim.SGD:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05,
                           momentum=momentum)


def _repopt(model: nn.Module, momentum: float, masks) -> RepOptSGD:
    return RepOptSGD(model.parameters(), lr=0.05, momentum=momentum, grad_masks=masks)


def _train(runs: list[tuple[nn.Module, torch.optim.Optimizer]], steps: int, in_shape) -> None:
    """The same ``steps`` float64 batches and regression targets for every (model, optimiser)."""
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        x = torch.randn(*in_shape, generator=gen, dtype=torch.float64)
        for model, opt in runs:
            torch.manual_seed(step)  # same dropout mask in every model, if any
            out = model(x)
            target = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
            opt.zero_grad()
            ((out - target).square().sum() / len(x)).backward()
            opt.step()


def _assert_bn_equal(a: nn.BatchNorm2d, b: nn.BatchNorm2d) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize(
    ("cin", "cout", "stride"), [(4, 6, 1), (5, 5, 2), (5, 5, 1)],
    ids=["in!=out", "stride2", "identity"],
)
def test_sgd_on_a_csla_vgg_block_equals_repoptsgd_on_its_plain_block(
    cin, cout, stride, momentum, steps
):
    torch.manual_seed(0)
    csla = _randomize(RepOptVGGBlock(cin, cout, stride=stride, mode="csla")).double()
    assert csla.has_identity == (cin == cout and stride == 1)
    plain = reparameterize_repopt(csla)  # train mode: BN uses batch statistics in both
    unmasked = reparameterize_repopt(csla)
    initial = _merged_vgg(csla)
    torch.testing.assert_close(plain.conv.weight.detach(), initial, atol=1e-12, rtol=0)
    masks = repopt_grad_masks(plain, repopt_scales(csla))
    # Control: RepOptSGD without the masks (plain SGD) takes the plain kernel elsewhere.
    _train([(csla, _sgd(csla, momentum)), (plain, _repopt(plain, momentum, masks)),
            (unmasked, _repopt(unmasked, momentum, {}))], steps, (3, cin, 7, 7))
    merged = _merged_vgg(csla)
    assert (merged - initial).abs().max() > 0.1  # the steps moved the kernel
    torch.testing.assert_close(plain.conv.weight.detach(), merged, atol=1e-5, rtol=1e-5)
    _assert_bn_equal(plain.bn, csla.bn)
    assert (unmasked.conv.weight.detach() - merged).abs().max() > 0.1


@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("relu", [True, False])
def test_sgd_on_a_csla_ghost_module_equals_repoptsgd_on_its_plain_module(relu, momentum, steps):
    torch.manual_seed(0)
    csla = _randomize(RepOptGhostModule(4, 6, relu=relu, mode="csla")).double()
    plain = reparameterize_repopt(csla)
    initial = _merged_ghost(csla)
    unmasked = reparameterize_repopt(csla)
    masks = repopt_grad_masks(plain, repopt_scales(csla))
    _train([(csla, _sgd(csla, momentum)), (plain, _repopt(plain, momentum, masks)),
            (unmasked, _repopt(unmasked, momentum, {}))], steps, (3, 4, 6, 6))
    merged = _merged_ghost(csla)
    assert (merged - initial).abs().max() > 0.1
    assert (unmasked.cheap_conv.weight.detach() - merged).abs().max() > 0.1
    torch.testing.assert_close(plain.cheap_conv.weight.detach(), merged, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain.primary_conv.weight, csla.primary_conv.weight,
                               atol=1e-5, rtol=1e-5)
    _assert_bn_equal(plain.primary_bn, csla.primary_bn)
    _assert_bn_equal(plain.final_bn, csla.final_bn)


@pytest.mark.parametrize("name", TINY)
def test_whole_tiny_models_train_equivalently(name):
    """Every block of a csla network, with the head and SE trained by plain SGD in both."""
    torch.manual_seed(0)
    csla = _randomize(build_repopt_model(name, mode="csla", num_classes=10)).double()
    plain = reparameterize_repopt(csla)
    masks = repopt_grad_masks(plain, repopt_scales(csla))
    _train([(csla, _sgd(csla, 0.9)), (plain, _repopt(plain, 0.9, masks))], 3, (4, 3, 32, 32))
    blocks = [(path, m) for path, m in csla.named_modules() if isinstance(m, RepOptBlock)]
    for path, block in blocks:
        merged = _merged_vgg(block) if "vgg" in name else _merged_ghost(block)
        kernel = plain.get_submodule(path).merged_kernel()[0]
        torch.testing.assert_close(kernel, merged, atol=1e-5, rtol=1e-5, msg=path)
    head = "linear" if "vgg" in name else "classifier"
    torch.testing.assert_close(plain.get_submodule(head).weight,
                               csla.get_submodule(head).weight, atol=1e-5, rtol=1e-5)


# -- init_target_from_scales and repopt_grad_masks --------------------------------------------


@pytest.mark.parametrize("name", TINY)
def test_init_target_from_scales_reconstructs(name):
    torch.manual_seed(3)
    model = build_repopt_model(name, mode="target", num_classes=10)
    scales = _random_scales(default_scales(name), seed=4)
    blocks = [(p, m) for p, m in model.named_modules() if isinstance(m, RepOptBlock)]
    before = {p: m.merged_kernel()[0] for p, m in blocks}
    state = torch.get_rng_state()
    init_target_from_scales(model, scales)
    torch.set_rng_state(state)  # replay the fresh 1x1 convs, one per VGG block in order
    for path, block in blocks:
        if isinstance(block, RepOptVGGBlock):
            fresh = nn.Conv2d(block.in_channels, block.out_channels, 1, stride=block.stride,
                              bias=False).weight.detach()
            expected = (_col(scales[f"{path}.scale_3x3"]) * before[path]
                        + _col(scales[f"{path}.scale_1x1"]) * F.pad(fresh, [1, 1, 1, 1]))
            if block.has_identity:
                expected = expected + _col(scales[f"{path}.scale_identity"]) * _centre_identity(
                    block.out_channels, block.in_channels)
            actual = block.conv.weight
        else:
            expected = (_col(scales[f"{path}.scale_dw"]) * before[path]
                        + _col(scales[f"{path}.scale_identity"])
                        * _centre_identity(block.out_channels, 1))
            actual = block.cheap_conv.weight
        torch.testing.assert_close(actual.detach(), expected, atol=1e-6, rtol=1e-6, msg=path)


@pytest.mark.parametrize("name", TINY)
def test_init_target_from_scales_with_zero_branch_scales_is_the_scaled_identity(name):
    model = build_repopt_model(name, mode="target", num_classes=10)
    scales = {k: (torch.arange(1, v.numel() + 1.0) if k.endswith("identity") else 0 * v)
              for k, v in default_scales(name).items()}
    init_target_from_scales(model, scales)
    for path, block in model.named_modules():
        if isinstance(block, RepOptVGGBlock):
            kernel = block.conv.weight.detach()
            if block.has_identity:
                expected = _col(scales[f"{path}.scale_identity"]) * _centre_identity(
                    block.out_channels, block.in_channels)
            else:
                expected = torch.zeros_like(kernel)
            assert torch.equal(kernel, expected), path
        elif isinstance(block, RepOptGhostModule):
            expected = _col(scales[f"{path}.scale_identity"]) * _centre_identity(
                block.out_channels, 1)
            assert torch.equal(block.cheap_conv.weight.detach(), expected), path


def test_init_and_masks_need_a_target_model_and_fitting_scales():
    hs = build_repopt_model("repopt-vgg-tiny", mode="hs", num_classes=10)
    scales = default_scales("repopt-vgg-tiny")
    with pytest.raises(ValueError, match=r"needs a model in mode 'target', got blocks in mode "
                                         r"'hs'"):
        init_target_from_scales(hs, scales)
    with pytest.raises(ValueError, match="mode 'target'"):
        repopt_grad_masks(hs, scales)
    target = build_repopt_model("repopt-vgg-tiny", mode="target", num_classes=10)
    with pytest.raises(ValueError, match="missing keys"):
        repopt_grad_masks(target, default_scales("repopt-ghost-tiny"))


def test_vgg_grad_masks_one_per_block_conv():
    model = build_repopt_model("repopt-vgg-tiny", mode="target", num_classes=10)
    scales = _random_scales(default_scales("repopt-vgg-tiny"), seed=5)
    masks = repopt_grad_masks(model, scales)
    convs = [m.conv.weight for m in model.modules() if isinstance(m, RepOptVGGBlock)]
    assert len(masks) == len(convs) == 7
    assert {id(p) for p in masks} == {id(p) for p in convs}
    assert all(mask.shape == param.shape for param, mask in masks.items())
    for path, cin, identity in (("stage2.1", 32, True), ("stage2.0", 16, False)):
        expected = vgg_grad_mask(scales[f"{path}.scale_3x3"], scales[f"{path}.scale_1x1"], cin,
                                 identity=identity)
        assert torch.equal(masks[model.get_submodule(path).conv.weight], expected)
    RepOptSGD(model.parameters(), lr=0.1, grad_masks=masks)  # accepted as they are


def test_ghost_grad_masks_one_per_module_cheap_conv():
    model = build_repopt_model("repopt-ghost-tiny", mode="target", num_classes=10)
    scales = _random_scales(default_scales("repopt-ghost-tiny"), seed=6)
    masks = repopt_grad_masks(model, scales)
    convs = [m.cheap_conv.weight for m in model.modules() if isinstance(m, RepOptGhostModule)]
    assert len(masks) == len(convs) == 2 * 7
    assert {id(p) for p in masks} == {id(p) for p in convs}
    assert all(mask.shape == param.shape for param, mask in masks.items())
    weight = model.get_submodule("blocks.4.0.ghost1").cheap_conv.weight
    assert torch.equal(masks[weight], ghost_grad_mask(scales["blocks.4.0.ghost1.scale_dw"]))
