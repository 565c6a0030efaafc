"""The FSMN-VAD encoder against FunASR 1.4.16's FSMN: same parameter names, same outputs chunk by chunk."""

import pytest
import torch

from funasr_lite.models.fsmn_vad import FSMNEncoder

REAL = dict(
    input_dim=400,
    input_affine_dim=140,
    fsmn_layers=4,
    linear_dim=250,
    proj_dim=128,
    lorder=20,
    rorder=0,
    lstride=1,
    rstride=0,
    output_affine_dim=140,
    output_dim=248,
)
# a small variant with look-ahead memory and dilated left taps
AHEAD = dict(REAL, input_dim=40, fsmn_layers=2, linear_dim=32, proj_dim=16, lorder=4, lstride=2, rorder=3, rstride=1)


@pytest.mark.parametrize("conf", [REAL, AHEAD], ids=["real", "lookahead"])
def test_streamed_outputs_equal_funasr(conf):
    pytest.importorskip("funasr")
    from funasr.models.fsmn_vad_streaming.encoder import FSMN

    torch.manual_seed(0)
    ref = FSMN(**conf).eval()
    ours = FSMNEncoder(**conf).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = 3 * torch.randn(1, 157, conf["input_dim"], generator=torch.Generator().manual_seed(1))
    cache, state, outs = {}, ours.initial_state(), []
    with torch.no_grad():
        for a, b in ((0, 60), (60, 61), (61, 157)):  # chunks, one of a single frame
            want = ref(x[:, a:b], cache=cache)
            got, state = ours(x[:, a:b], state)
            assert torch.equal(got, want)
            outs.append(got)
        whole, _ = ours(x, ours.initial_state())
    # FunASR's right memory sees only its chunk; without it, chunking changes nothing
    if conf["rorder"] == 0:
        assert torch.allclose(torch.cat(outs, 1), whole, atol=1e-6)
    assert whole[0].argmax(-1).unique().numel() >= 2  # the posteriors differ between frames
