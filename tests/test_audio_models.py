"""AudioInceptionNeXt and AudioRepInceptionNeXt: shapes, block structure, the BN-folding and
kernel-merging arithmetic, and exact re-parameterisation of the Rep network."""

import pytest
import torch
from torch import nn

from fedssl.models.audio_inception import (
    AUDIO_INCEPTION_CONFIGS,
    AUDIO_INCEPTION_VARIANTS,
    AudioInceptionConfig,
    AudioInceptionNeXtBlock,
    AudioRepInceptionNeXtBlock,
    RepMultiScaleDWConv,
    audio_inceptionnext,
    audio_rep_inceptionnext,
)
from fedssl.models.reparam import fold_bn, fold_conv_bn, pad_and_sum, reparameterize

BUILDERS = [audio_inceptionnext, audio_rep_inceptionnext]
CPU_VARIANTS = [v for v in AUDIO_INCEPTION_VARIANTS if v != "base"]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters: with the init values (0, 1, 1, 0, and
    zero final BNs) every folding bug that only mis-scales would go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model


def _kernel_sizes(model: nn.Module) -> set[tuple[int, int]]:
    return {m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)}


# -- shapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("builder", BUILDERS)
def test_logits_and_features_shapes(builder, variant):
    torch.manual_seed(0)
    x = torch.randn(2, 1, 37, 48)  # odd time length: strides must not assume divisibility
    model = builder(variant, num_classes=7).eval()
    assert model(x).shape == (2, 7)
    features = builder(variant).eval()
    assert isinstance(features.feature_dim, int)
    assert features.feature_dim == AUDIO_INCEPTION_CONFIGS[variant].widths[-1]
    assert features(x).shape == (2, features.feature_dim)
    assert not any(isinstance(m, (nn.Linear, nn.Dropout)) for m in features.modules())


@pytest.mark.parametrize("builder", BUILDERS)
def test_small_and_multichannel_inputs(builder):
    model = builder("tiny", num_classes=3, in_chans=2).eval()
    assert model(torch.randn(1, 2, 16, 16)).shape == (1, 3)


def test_base_network_once():
    model = audio_inceptionnext("base").eval()
    assert model.feature_dim == 512
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 512)
    assert [len(stage) for stage in model.stages] == [3, 4, 6, 3]
    assert [stage[0].dim_out for stage in model.stages] == [64, 128, 256, 512]
    assert [stage[0].stride for stage in model.stages] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert model.stem.conv.kernel_size == (5, 7) and model.stem.conv.stride == (2, 2)
    assert model.stem.conv.padding == (2, 3)


def test_base_rep_fused_has_fewer_parameters():
    model = audio_rep_inceptionnext("base", num_classes=309)
    fused = reparameterize(model)
    assert _params(fused) < _params(model)


@pytest.mark.parametrize("builder", BUILDERS)
def test_training_step_gives_finite_gradients(builder):
    model = builder("tiny", num_classes=4).train()
    loss = nn.functional.cross_entropy(model(torch.randn(3, 1, 32, 32)), torch.tensor([0, 1, 3]))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("builder", BUILDERS)
def test_argument_validation(builder):
    with pytest.raises(ValueError, match="base, small, tiny"):
        builder("huge")
    with pytest.raises(ValueError):
        builder("tiny", num_classes=-1)
    with pytest.raises(ValueError):
        builder("tiny", in_chans=0)


@pytest.mark.parametrize("kernels", [(21, 10, 3), (11, 21, 3), (21, 11, 11)])
def test_config_rejects_kernels_that_cannot_fuse(kernels):
    large, middle, small = kernels
    with pytest.raises(ValueError, match="kernels"):
        AudioInceptionConfig(depths=(1, 1, 1, 1), widths=(8, 8, 8, 8), stem_width=8,
                             large_kernel=large, middle_kernel=middle, small_kernel=small)


# -- block structure ------------------------------------------------------------------------------


def test_inceptionnext_block_structure():
    block = AudioInceptionNeXtBlock(8, 16, stride=2)
    assert block.head.conv.stride == (2, 2) and block.head.conv.kernel_size == (1, 1)
    assert not any(isinstance(m, nn.ReLU) for m in block.head.modules())  # no activation
    shapes = [(b.time.conv.kernel_size, b.freq.conv.kernel_size) for b in block.branches]
    assert shapes == [((21, 1), (1, 21)), ((11, 1), (1, 11)), ((3, 1), (1, 3))]
    for branch in block.branches:
        for part in (branch.time.conv, branch.freq.conv):
            assert part.groups == part.in_channels == part.out_channels == 16
            assert part.stride == (1, 1) and part.bias is None
        # Cascade order: time conv, ReLU, freq conv, ReLU.
        assert [type(m) for m in branch.children()] == [nn.Sequential, nn.ReLU,
                                                         nn.Sequential, nn.ReLU]
    assert block.branches[0].time.conv.padding == (10, 0)
    assert block.branches[0].freq.conv.padding == (0, 10)
    assert block.mlp.expand.conv.out_channels == 64 and block.mlp.project.conv.in_channels == 64
    assert not any(isinstance(m, nn.ReLU) for m in block.mlp.modules())
    assert torch.all(block.mlp.project.bn.weight == 0)
    assert isinstance(block.shortcut, nn.Sequential) and block.shortcut.conv.stride == (2, 2)
    assert isinstance(AudioInceptionNeXtBlock(16, 16).shortcut, nn.Identity)


def test_inceptionnext_mlp_is_affine_and_block_starts_as_its_shortcut():
    torch.manual_seed(0)
    block = _randomise_bn(AudioInceptionNeXtBlock(4, 6, stride=(2, 1))).eval()
    a, b = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        zero = block.mlp(torch.zeros_like(a))
        # No activation between the two 1x1 convs: the MLP is an affine map.
        torch.testing.assert_close(block.mlp(a + b) - zero, (block.mlp(a) - zero)
                                   + (block.mlp(b) - zero), atol=1e-4, rtol=1e-4)
    fresh = AudioInceptionNeXtBlock(4, 6, stride=(2, 1)).eval()
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():  # zero final BN with zero bias: the residual branch adds nothing
        torch.testing.assert_close(fresh(x), torch.relu(fresh.shortcut(x)))
    assert fresh(x).shape == (2, 6, 5, 11)


def test_rep_block_structure():
    block = AudioRepInceptionNeXtBlock(8, 16, stride=2)
    assert isinstance(block.head_act, nn.ReLU) and block.head.conv.stride == (2, 2)
    for mixer, shapes in ((block.time_mixer, [(21, 1), (11, 1), (3, 1)]),
                          (block.freq_mixer, [(1, 21), (1, 11), (1, 3)])):
        assert isinstance(mixer, RepMultiScaleDWConv) and not mixer.is_fused
        assert [b.conv.kernel_size for b in mixer.branches] == shapes
        assert [b.conv.padding for b in mixer.branches] == [(k // 2 if k > 1 else 0,
                                                            h // 2 if h > 1 else 0)
                                                           for k, h in shapes]
        assert all(b.conv.groups == 16 and b.conv.bias is None for b in mixer.branches)
        assert all(isinstance(b.bn, nn.BatchNorm2d) for b in mixer.branches)
    assert [type(m) for m in block.mlp.children()] == [nn.Sequential, nn.ReLU, nn.Sequential]
    assert torch.all(block.mlp.project.bn.weight == 0)


def test_rep_mixer_adds_the_identity():
    mixer = RepMultiScaleDWConv(3, axis="freq").eval()
    with torch.no_grad():
        for branch in mixer.branches:
            branch.bn.weight.zero_()
    x = torch.randn(1, 3, 4, 25)
    torch.testing.assert_close(mixer(x), x)


# -- the arithmetic -------------------------------------------------------------------------------


def test_fold_bn_by_hand():
    kernel = torch.tensor([[[[1.0, 2.0, 3.0]]], [[[1.0, -1.0, 2.0]]]])  # (2, 1, 1, 3)
    mean, var = torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])
    gamma, beta = torch.tensor([4.0, -1.0]), torch.tensor([5.0, 0.5])
    # eps 1: σ = (2, 1); γ/σ = (2, -1); b = β − μγ/σ = (5 − 2, 0.5 − 0).
    folded, bias = fold_bn(kernel, mean, var, gamma, beta, eps=1.0)
    assert torch.equal(folded, torch.tensor([[[[2.0, 4.0, 6.0]]], [[[-1.0, 1.0, -2.0]]]]))
    assert torch.equal(bias, torch.tensor([3.0, 0.5]))


def test_fold_conv_bn_matches_the_modules():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, (3, 1), padding=(1, 0), bias=True)
    bn = _randomise_bn(nn.Sequential(nn.BatchNorm2d(5)))[0].eval()
    kernel, bias = fold_conv_bn(conv, bn)
    x = torch.randn(2, 3, 6, 4)
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.conv2d(x, kernel, bias, padding=(1, 0)),
                                   bn(conv(x)))


def test_pad_and_sum_by_hand():
    k3 = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1)
    k1 = torch.tensor([10.0]).reshape(1, 1, 1, 1)
    kernel, bias = pad_and_sum([k3, k1], [torch.tensor([1.0]), torch.tensor([2.0])], 5, dim=2)
    assert torch.equal(kernel, torch.tensor([0.0, 1.0, 12.0, 3.0, 0.0]).reshape(1, 1, 5, 1))
    assert torch.equal(bias, torch.tensor([3.0]))
    kernel, _ = pad_and_sum([k3.reshape(1, 1, 1, 3)], [torch.zeros(1)], 7, dim=-1)
    assert torch.equal(kernel, torch.tensor([0.0, 0, 1, 2, 3, 0, 0]).reshape(1, 1, 1, 7))
    with pytest.raises(ValueError, match="centre"):
        pad_and_sum([k3], [torch.zeros(1)], 4, dim=2)
    with pytest.raises(ValueError, match="centre"):
        pad_and_sum([k3], [torch.zeros(1)], 1, dim=2)
    with pytest.raises(ValueError, match="differ"):
        pad_and_sum([k3, torch.ones(2, 1, 1, 1)], [torch.zeros(1), torch.zeros(2)], 3, dim=2)


# -- re-parameterisation --------------------------------------------------------------------------


def test_mixer_reparameterizes_in_place():
    torch.manual_seed(0)
    mixer = _randomise_bn(RepMultiScaleDWConv(6, axis="time")).eval()
    x = torch.randn(2, 6, 30, 5)
    with torch.no_grad():
        expected = mixer(x)
        mixer.reparameterize()
        assert mixer.is_fused and not hasattr(mixer, "branches")
        assert mixer.fused.kernel_size == (21, 1) and mixer.fused.padding == (10, 0)
        assert mixer.fused.groups == 6 and mixer.fused.bias is not None
        torch.testing.assert_close(mixer(x), expected, atol=1e-5, rtol=1e-5)
        mixer.reparameterize()  # idempotent
        torch.testing.assert_close(mixer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("build", "shape"), [
    (lambda: audio_rep_inceptionnext("tiny", num_classes=5), (2, 1, 40, 36)),
    (lambda: AudioRepInceptionNeXtBlock(8, 12, stride=2), (2, 8, 23, 19)),
    (lambda: AudioRepInceptionNeXtBlock(8, 8, stride=(2, 1)), (1, 8, 17, 26)),
], ids=["tiny-network", "block-stride2-in8-out12", "block-stride-time-only"])
def test_reparameterize_is_exact_with_random_bn_statistics(build, shape):
    torch.manual_seed(0)
    model = _randomise_bn(build()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(shape)
    fused = reparameterize(model)
    model.eval()
    with torch.no_grad():
        expected, actual = model(x), fused(x)
    assert expected.abs().max() > 1e-2  # not trivially zero
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
    assert not fused.training
    sizes = {k for ks in _kernel_sizes(fused) for k in ks}
    assert 3 not in sizes and 11 not in sizes
    assert {(3, 1), (1, 11)} <= _kernel_sizes(model)
    assert _params(fused) < _params(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.is_fused for m in model.modules() if isinstance(m, RepMultiScaleDWConv))
    with torch.no_grad():  # fusing twice is a copy
        torch.testing.assert_close(reparameterize(fused)(x), actual)


def test_reparameterize_needs_something_to_fuse():
    with pytest.raises(ValueError, match="nothing to fuse"):
        reparameterize(audio_inceptionnext("tiny"))
    with pytest.raises(ValueError, match="nothing to fuse"):
        reparameterize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))


def test_a_block_without_its_residual_branch_fails_at_construction():
    from fedssl.models.audio_inception import _Block

    class Incomplete(_Block):
        pass

    with pytest.raises(TypeError, match="transform"):
        Incomplete(8, 8)
