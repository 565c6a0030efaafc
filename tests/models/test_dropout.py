"""The cheaper CPU dropout: nn.Dropout's distribution and scaling, identity in eval / at p=0, the right gradient,
and the training attention path (explicit softmax + this dropout) equal to SDPA when nothing is dropped."""

import pytest
import torch
import torch.nn.functional as F

from funasr_lite.models import sanm
from funasr_lite.models.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keeps_one_minus_p_and_scales_like_nn_dropout(p):
    torch.manual_seed(0)
    x = torch.rand(400, 1000) + 0.5  # no zeros: a zero output means dropped
    y = dropout(x, p, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003  # 400k draws: the std of the mean is < 0.001
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    # masks differ between calls and between rows (it is random, not a fixed pattern)
    assert not torch.equal(kept, dropout(x, p, True) != 0)
    assert 0 < kept[:, 0].float().mean().item() < 1


def test_identity_in_eval_and_at_p0_and_module_has_no_state():
    x = torch.randn(3, 5, 7)
    assert dropout(x, 0.3, False) is x and dropout(x, 0.0, True) is x
    m = Dropout(0.3)
    assert isinstance(m, torch.nn.Dropout) and m.p == 0.3 and dict(m.state_dict()) == {}
    m.eval()
    assert m(x) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(1)
    x = (torch.rand(64, 256) + 0.5).requires_grad_()
    y = dropout(x, 0.25, True)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() / 0.75)


def test_training_attention_path_equals_sdpa_without_drops(monkeypatch):
    torch.manual_seed(2)
    b, n, t, d, h = 3, 5, 9, 16, 4
    q, k, v = torch.randn(b, n, d), torch.randn(b, t, d), torch.randn(b, t, d)
    mask = torch.arange(t)[None, :] < torch.tensor([9, 4, 1])[:, None]
    ref = sanm.attention(q, k, v, mask, h, 0.0)  # SDPA
    monkeypatch.setattr(sanm, "dropout", lambda x, p, training: x)  # the explicit path, nothing dropped
    torch.testing.assert_close(sanm.attention(q, k, v, mask, h, 0.1), ref, rtol=1e-5, atol=1e-6)
    qh = q.reshape(b, n, h, d // h).transpose(1, 2)
    kh, vh = (z.reshape(b, t, h, d // h).transpose(1, 2) for z in (k, v))
    alone = F.scaled_dot_product_attention(qh[1:2], kh[1:2, :, :4], vh[1:2, :, :4]).transpose(1, 2).reshape(1, n, d)
    torch.testing.assert_close(ref[1:2], alone, rtol=1e-5, atol=1e-6)  # masked keys take no part
