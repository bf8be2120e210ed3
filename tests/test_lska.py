"""LSKA: the decomposition table, kernel shapes and dilations, the exact k×k receptive field,
and VAN-LSKA backbones on images and spectrograms."""

import pytest
import torch

from fedssl.models.lska import LSKA, LSKA_KERNELS, VAN_CONFIGS, LSKABlock, van_lska_tiny

TABLE = {7: (3, 3, 2, 2), 11: (3, 5, 2, 4), 23: (5, 7, 3, 9), 35: (5, 11, 3, 15),
         41: (5, 13, 3, 18), 53: (5, 17, 3, 24)}


@pytest.mark.parametrize("k", sorted(TABLE))
def test_kernel_shapes_dilations_and_paddings_follow_the_table(k):
    local, dilated, dilation, padding = TABLE[k]
    assert LSKA_KERNELS[k].effective_kernel == k
    module = LSKA(8, k)
    assert module.conv0h.weight.shape == (8, 1, 1, local)
    assert module.conv0v.weight.shape == (8, 1, local, 1)
    assert module.conv_spatial_h.weight.shape == (8, 1, 1, dilated)
    assert module.conv_spatial_v.weight.shape == (8, 1, dilated, 1)
    assert module.conv_spatial_h.dilation == (dilation, dilation)
    assert module.conv_spatial_h.padding == (0, padding)
    assert module.conv_spatial_v.padding == (padding, 0)
    assert all(c.groups == 8 for c in (module.conv0h, module.conv0v, module.conv_spatial_h,
                                       module.conv_spatial_v))
    assert module(torch.randn(2, 8, 9, 13)).shape == (2, 8, 9, 13)


@pytest.mark.parametrize("k", sorted(TABLE))
def test_one_output_pixel_sees_exactly_a_k_by_k_window(k):
    module = LSKA(2, k).double()
    with torch.no_grad():
        for p in module.parameters():
            p.abs_().add_(0.1)  # positive weights: no accidental cancellation
    size, centre = k + 16, (k + 16) // 2
    x = torch.rand(1, 2, size, size, dtype=torch.float64, requires_grad=True)
    module.attention_map(x)[0, 0, centre, centre].backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1))).unbind(1)
    half = k // 2
    assert (rows.min(), rows.max()) == (centre - half, centre + half)
    assert (cols.min(), cols.max()) == (centre - half, centre + half)
    assert len(rows) == k * k  # the whole window, no holes from the dilation


def test_unsupported_kernel_is_refused_with_the_valid_sizes():
    with pytest.raises(ValueError, match="7, 11, 23, 35, 41, 53"):
        LSKA(4, 13)


def test_block_keeps_the_shape_and_starts_near_identity():
    block = LSKABlock(16, 7, mlp_ratio=4).eval()
    x = torch.randn(2, 16, 8, 8)
    y = block(x)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 0.5 * x.abs().max()  # layer scale 1e-2


@pytest.mark.parametrize(("in_chans", "shape"), [(3, (2, 3, 64, 64)), (1, (2, 1, 96, 64))])
def test_van_lska_on_images_and_spectrograms(in_chans, shape):
    torch.manual_seed(0)
    model = van_lska_tiny(in_chans=in_chans, num_classes=5, k_size=7).eval()
    assert model(torch.randn(*shape)).shape == (2, 5)
    features = van_lska_tiny(in_chans=in_chans, k_size=7).eval()(torch.randn(*shape))
    assert features.shape == (2, VAN_CONFIGS["tiny"].dims[-1])


def test_van_sizes_follow_the_configs():
    assert VAN_CONFIGS["small"].depths == (2, 2, 4, 2)
    assert VAN_CONFIGS["base"].depths == (3, 3, 12, 3)
    blocks = sum(len(s["blocks"]) for s in van_lska_tiny(k_size=23).stages)
    assert blocks == sum(VAN_CONFIGS["tiny"].depths)
