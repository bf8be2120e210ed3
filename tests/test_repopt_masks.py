"""RepOpt gradient masks and RepOptSGD: hand-computed masks, and SGD-equivalence to CSLA."""

import pytest
import torch
import torch.nn.functional as F

from fedssl.clients.repopt import RepOptSGD
from fedssl.models.repopt import ghost_grad_mask, vgg_grad_mask


def test_vgg_mask_by_hand():
    mask = vgg_grad_mask(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5]), 2, identity=True)
    expected = torch.empty(2, 2, 3, 3)
    expected[0] = 1.0
    expected[1] = 4.0
    expected[0, :, 1, 1] = 1.0 + 9.0
    expected[1, :, 1, 1] = 4.0 + 0.25
    expected[0, 0, 1, 1] += 1.0
    expected[1, 1, 1, 1] += 1.0
    assert torch.equal(mask, expected)
    without = vgg_grad_mask(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5]), 3, identity=False)
    assert without.shape == (2, 3, 3, 3)
    assert without[0, 0, 1, 1] == 10.0 and without[1, 2, 0, 0] == 4.0


def test_ghost_mask_by_hand():
    mask = ghost_grad_mask(torch.tensor([2.0, 0.5]))
    expected = torch.tensor([4.0, 0.25]).reshape(2, 1, 1, 1).repeat(1, 1, 3, 3)
    expected[:, 0, 1, 1] += 1.0
    assert torch.equal(mask, expected)
    no_identity = ghost_grad_mask(torch.tensor([2.0]), identity=False)
    assert torch.equal(no_identity, torch.full((1, 1, 3, 3), 4.0))


def test_mask_argument_errors():
    with pytest.raises(ValueError, match="identity branch needs"):
        vgg_grad_mask(torch.ones(2), torch.ones(2), 3, identity=True)
    with pytest.raises(ValueError, match="channels"):
        vgg_grad_mask(torch.ones(2), torch.ones(3), 2, identity=False)
    with pytest.raises(ValueError, match="1-d"):
        ghost_grad_mask(torch.ones(2, 2))


def _merge(w3, w1, s3, s1, w_id):
    kernel = s3.view(-1, 1, 1, 1) * w3 + s1.view(-1, 1, 1, 1) * F.pad(w1, [1, 1, 1, 1])
    if w_id is not None:
        channels = torch.arange(kernel.shape[0])
        kernel = kernel.clone()
        kernel[channels, channels, 1, 1] += w_id
    return kernel


@pytest.mark.parametrize("identity", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_repoptsgd_on_the_plain_kernel_equals_sgd_on_the_csla_branches(identity, momentum):
    torch.manual_seed(0)
    channels = 4
    s3, s1 = torch.rand(channels) + 0.5, torch.rand(channels) + 0.2
    w3 = torch.randn(channels, channels, 3, 3, requires_grad=True)
    w1 = torch.randn(channels, channels, 1, 1, requires_grad=True)
    w_id = torch.ones(channels, requires_grad=True) if identity else None
    plain = torch.nn.Parameter(_merge(w3, w1, s3, s1, w_id).detach().clone())
    initial = plain.detach().clone()
    branch_params = [w3, w1] + ([w_id] if identity else [])
    sgd = torch.optim.SGD(branch_params, lr=0.01, momentum=momentum)
    rep = RepOptSGD([plain], lr=0.01, momentum=momentum,
                    grad_masks={plain: vgg_grad_mask(s3, s1, channels, identity)})
    for _ in range(5):
        x, target = torch.randn(2, channels, 6, 6), torch.randn(2, channels, 6, 6)
        y = (s3.view(1, -1, 1, 1) * F.conv2d(x, w3, padding=1)
             + s1.view(1, -1, 1, 1) * F.conv2d(x, w1))
        if identity:
            y = y + w_id.view(1, -1, 1, 1) * x
        sgd.zero_grad()
        F.mse_loss(y, target).backward()
        sgd.step()
        rep.zero_grad()
        F.mse_loss(F.conv2d(x, plain, padding=1), target).backward()
        rep.step()
    merged = _merge(w3, w1, s3, s1, w_id).detach()
    assert not torch.allclose(merged, initial, atol=1e-3)  # the steps did move the kernel
    torch.testing.assert_close(plain.detach(), merged, atol=1e-5, rtol=1e-5)


def test_repoptsgd_without_masks_is_torch_sgd():
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ours = RepOptSGD([a], lr=0.1, momentum=0.9, weight_decay=1e-3)
    reference = torch.optim.SGD([b], lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(4):
        x = torch.randn(3, 2)
        for param, opt in ((a, ours), (b, reference)):
            opt.zero_grad()
            (param @ x).square().sum().backward()
            opt.step()
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_repoptsgd_refuses_a_mask_of_the_wrong_shape():
    p = torch.nn.Parameter(torch.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match="mask shape"):
        RepOptSGD([p], lr=0.1, grad_masks={p: torch.ones(2, 2, 1, 1)})
