"""funasr_lite.models.ct_transformer vs FunASR's CTTransformer: same state_dict names, same logits."""

import torch

from funasr_lite.models.ct_transformer import CTTransformer

ENCODER = dict(
    input_size=16,
    output_size=16,
    attention_heads=2,
    linear_units=32,
    num_blocks=3,
    dropout_rate=0.1,
    attention_dropout_rate=0.0,
    input_layer="pe",
    kernel_size=5,
    sanm_shfit=0,
)


def test_loads_funasr_weights_and_matches_logits():
    from funasr.models.ct_transformer.model import CTTransformer as FunasrCTTransformer
    from funasr.models.sanm.encoder import SANMEncoder  # noqa: F401  (registers SANMEncoder)

    torch.manual_seed(0)
    ref = FunasrCTTransformer(
        encoder="SANMEncoder",
        encoder_conf=dict(ENCODER, padding_idx=0),
        vocab_size=50,
        punc_list=["<unk>", "_", "，", "。"],
        embed_unit=16,
        att_unit=16,
    ).eval()
    ours = CTTransformer(50, 4, 16, 16, ENCODER).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    ids = torch.randint(0, 50, (2, 13))
    lengths = torch.tensor([13, 9])
    with torch.no_grad():
        logits, out_lengths = ours(ids, lengths)
        for b in range(2):
            n = int(lengths[b])
            expected, _ = ref.punc_forward(ids[b : b + 1, :n], lengths[b : b + 1].int())
            # row by row (FunASR's inference runs one window at a time); padding does not leak into row 1
            torch.testing.assert_close(logits[b : b + 1, :n], expected, rtol=1e-5, atol=1e-5)
    assert out_lengths.tolist() == [13, 9]
