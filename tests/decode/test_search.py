"""Tests for funasr_lite.decode.search: greedy, beam search with CTC prefix scores, batching.

Oracle tests compare with funasr 1.4.16's BeamSearchPara + CTCPrefixScorer (and its
Paraformer.inference dispatch) on seeded random log-prob tensors.
"""

import types

import numpy as np
import pytest
import torch

from funasr_lite.decode.options import DecodingOptions
from funasr_lite.decode.search import Hypothesis, beam_search, ctc_extend_state, ctc_prefix_scores, decode_batch_nbest

BLANK, SOS, EOS = 0, 1, 2
SearchOptions = DecodingOptions  # the search takes the decoding options as they are


def greedy_search(am):
    """One utterance (N, V) through the batch decoder's greedy path."""
    return decode_batch_nbest(am[None], torch.tensor([am.shape[0]]), DecodingOptions())[0][0]


def decode_batch(am, lens, opts, ctc=None, ctc_lens=None):
    """The best hypothesis of each utterance."""
    return [h[0] for h in decode_batch_nbest(am, lens, opts, ctc, ctc_lens)]


# funasr's numpy CTC scorer reads uninitialised rows of its state (never used in results)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in logaddexp")


# ---------------------------------------------------------------------------
# random inputs
# ---------------------------------------------------------------------------
def _case(seed: int, V: int = 12, structured: bool = True):
    """(am_logp (N,V), ctc_logp (T,V)) float32; structured cases look like a real model.

    Structured: a reference label sequence ending in </s>; the decoder is peaky on it
    and the CTC posteriors follow an alignment of it with blanks, both with noise.
    Unstructured: plain random log-softmax rows.
    """
    g = torch.Generator().manual_seed(seed)
    N = int(torch.randint(1, 9, (1,), generator=g))
    T = int(torch.randint(N + 1, 3 * N + 4, (1,), generator=g))
    if not structured:
        am = torch.log_softmax(2.0 * torch.randn(N, V, generator=g), -1)
        ctc = torch.log_softmax(2.0 * torch.randn(T, V, generator=g), -1)
        return am, ctc
    ref = torch.randint(3, V, (N,), generator=g)
    ref[-1] = EOS
    am_logits = 1.5 * torch.randn(N, V, generator=g)
    am_logits[torch.arange(N), ref] += 2.0
    labels = ref[:-1]
    align = torch.full((T,), BLANK, dtype=torch.long)
    if labels.numel() > 0:
        pos = torch.sort(torch.randperm(T, generator=g)[: labels.numel()])[0]
        align[pos] = labels
    ctc_logits = 1.5 * torch.randn(T, V, generator=g)
    ctc_logits[torch.arange(T), align] += 3.0
    return torch.log_softmax(am_logits, -1), torch.log_softmax(ctc_logits, -1)


def _funasr_beam(am, ctc, beam, ctc_weight, penalty, full_vocab=False):
    """Run funasr's BeamSearchPara the way Paraformer.init_beam_search builds it."""
    pytest.importorskip("funasr")
    from funasr.models.paraformer.search import BeamSearchPara
    from funasr.models.transformer.scorers.ctc import CTCPrefixScorer
    from funasr.models.transformer.scorers.length_bonus import LengthBonus

    class _IdentityCTC(torch.nn.Module):  # the "encoder output" we pass is already CTC log-probs
        def log_softmax(self, x):
            return x

    V = am.shape[1]
    scorers = {"ctc": CTCPrefixScorer(ctc=_IdentityCTC(), eos=EOS), "length_bonus": LengthBonus(V)}
    scorers["ngram"] = None
    weights = dict(decoder=1.0 - ctc_weight, ctc=ctc_weight, lm=0.0, ngram=0.0, length_bonus=penalty)
    bs = BeamSearchPara(
        scorers=scorers,
        weights=weights,
        beam_size=beam,
        vocab_size=V,
        sos=SOS,
        eos=EOS,
        token_list=[str(i) for i in range(V)],
        pre_beam_score_key=None if full_vocab else "full",
    )
    hyps = bs(x=ctc.clone(), am_scores=am, maxlenratio=0.0, minlenratio=0.0)
    out = []
    for h in hyps:
        raw = h.yseq[1:-1].tolist()
        out.append(([t for t in raw if t not in (BLANK, SOS, EOS)], float(h.score), h.yseq.tolist()))
    return out


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------
def test_options_validation():
    SearchOptions(lm_weight=0.15).check_supported()  # no lm_file: FunASR ignores lm_weight, and so do we
    with pytest.raises(ValueError, match="language-model fusion is not supported"):
        SearchOptions(lm_weight=0.15, extra={"lm_file": "lm.pb"}).check_supported()
    with pytest.raises(ValueError, match="language-model fusion is not supported"):
        decode_batch(torch.zeros(1, 2, 6), torch.tensor([2]), SearchOptions(lm_weight=0.15, extra={"lm_file": "x"}))
    with pytest.raises(ValueError, match="beam_size"):
        SearchOptions(beam_size=0)
    with pytest.raises(ValueError, match="ctc_weight"):
        SearchOptions(ctc_weight=1.5)
    with pytest.raises(ValueError, match="nbest"):
        SearchOptions(nbest=0)
    assert not SearchOptions().uses_beam
    assert SearchOptions(beam_size=5).uses_beam
    assert SearchOptions(ctc_weight=0.3).uses_beam  # CTC always goes through beam search
    assert not SearchOptions(ctc_weight=1e-6).uses_ctc  # FunASR's > 1e-5 threshold


def test_ctc_weight_without_ctc_head_is_an_error():
    am = torch.log_softmax(torch.randn(2, 4, 6), -1)
    with pytest.raises(ValueError, match="CTC head"):
        decode_batch(am, torch.tensor([4, 3]), SearchOptions(beam_size=3, ctc_weight=0.3))
    with pytest.raises(ValueError, match="ctc_logp"):
        beam_search(am[0], beam_size=3, ctc_weight=0.3)


# ---------------------------------------------------------------------------
# greedy
# ---------------------------------------------------------------------------
def test_greedy_strips_blank_sos_eos_and_sums_max():
    V = 6
    ids = [3, 0, 4, 1, 5, 2]
    am = torch.full((len(ids), V), -5.0)
    am[torch.arange(len(ids)), torch.tensor(ids)] = torch.tensor([-0.1, -0.2, -0.3, -0.4, -0.5, -0.6])
    h = greedy_search(am)
    assert h.raw_ids == ids
    assert h.token_ids == [3, 4, 5]
    assert h.score == pytest.approx(-2.1, abs=1e-6)
    assert isinstance(h.score, float)
    empty = greedy_search(torch.zeros(0, V))
    assert empty.token_ids == [] and empty.score == 0.0


def test_greedy_matches_funasr_formula():
    """FunASR: yseq=[sos]+argmax+[eos]; score=sum(max); ids = yseq[1:-1] minus eos/sos/blank."""
    for seed in range(50):
        am, _ = _case(seed, structured=seed % 2 == 0)
        yseq = [SOS] + am.argmax(-1).tolist() + [EOS]
        ref_ids = [t for t in yseq[1:-1] if t not in (EOS, SOS, BLANK)]
        ref_score = float(torch.sum(am.max(dim=-1)[0], dim=-1))
        h = greedy_search(am)
        assert h.token_ids == ref_ids
        assert h.score == ref_score  # bitwise: same reduction in float32


def test_beam1_equals_greedy_without_early_eos():
    for seed in range(40):
        am, _ = _case(seed, structured=False)
        am = am.clone()
        am[:-1, EOS] = -30.0  # </s> never wins before the last position
        g = greedy_search(am)
        (b, *_rest) = beam_search(am, beam_size=1)
        assert b.token_ids == g.token_ids
        assert b.raw_ids == g.raw_ids
        assert b.score == pytest.approx(g.score, abs=1e-5)


def test_beam_ends_hypothesis_at_early_eos():
    """Choosing </s> before the last position ends a beam hypothesis (greedy just drops it)."""
    am = torch.log_softmax(torch.tensor([[0.0, 0, 0, 5, 0], [0, 0, 6, 0, 0], [0, 0, 0, 0, 5]]), -1)
    g = greedy_search(am)
    assert g.token_ids == [3, 4]
    best = beam_search(am, beam_size=2)[0]
    assert best.raw_ids == [3, EOS]
    assert best.token_ids == [3]


# ---------------------------------------------------------------------------
# CTC prefix scorer vs funasr's CTCPrefixScore
# ---------------------------------------------------------------------------
def _clip(a):
    """Values near FunASR's log zero (-1e10) are all 'impossible'; compare them as -1e9."""
    return np.maximum(np.asarray(a, dtype=np.float64), -1e9)


def test_ctc_prefix_scores_match_funasr_numpy_scorer():
    pytest.importorskip("funasr")
    from funasr.models.transformer.scorers.ctc_prefix_score import CTCPrefixScore

    V = 9
    for seed in range(20):
        _, ctc = _case(seed, V=V, structured=seed % 2 == 0)
        T = ctc.shape[0]
        ref = CTCPrefixScore(ctc.numpy(), BLANK, EOS, np)
        g = torch.Generator().manual_seed(seed)
        prefix = [SOS]
        r_ref = ref.initial_state()
        r_ours = torch.from_numpy(r_ref).double().unsqueeze(0)
        c64 = ctc.double()
        cands = torch.arange(V)
        for L in range(min(T, 5)):
            psi_ref, states = ref(prefix, cands.numpy(), r_ref)
            last = torch.tensor([prefix[-1]])
            psi = ctc_prefix_scores(c64, r_ours, L, last, cands, blank_id=BLANK, eos_id=EOS)
            np.testing.assert_allclose(_clip(psi[0].numpy()), _clip(psi_ref), rtol=0, atol=2e-4)
            nxt = int(torch.randint(3, V, (1,), generator=g))
            if L > 0 and bool(torch.rand(1, generator=g) < 0.3):
                nxt = prefix[-1]  # exercise the repeated-label case
            r_ref = states[nxt]
            r_ours = ctc_extend_state(c64, r_ours, L, last, torch.tensor([nxt]), blank_id=BLANK)
            s = max(L + 1, 1) - 1  # rows before s are unused (uninitialised in funasr)
            np.testing.assert_allclose(_clip(r_ours[0, s:].numpy()), _clip(r_ref[s:]), rtol=0, atol=2e-4)
            prefix.append(nxt)


# ---------------------------------------------------------------------------
# beam search vs funasr's BeamSearchPara
# ---------------------------------------------------------------------------
PARITY = [
    # (beam, ctc_weight, penalty, full_vocab, n_cases)
    (1, 0.0, 0.0, False, 40),
    (5, 0.0, 0.0, False, 40),
    (5, 0.0, 0.7, False, 30),
    (5, 0.3, 0.0, False, 40),
    (5, 0.5, 0.0, False, 40),
    (4, 0.5, -0.4, False, 30),
    (1, 0.5, 0.0, False, 30),
    (3, 0.3, 0.0, True, 30),
]


@pytest.mark.parametrize("beam,ctc_weight,penalty,full_vocab,n_cases", PARITY)
def test_beam_search_matches_funasr(beam, ctc_weight, penalty, full_vocab, n_cases):
    pytest.importorskip("funasr")
    worst = 0.0
    changed = 0  # cases where the beam's best differs from greedy: the test must see some
    for seed in range(n_cases):
        V = 12 if seed % 3 else 7
        am, ctc = _case(1000 * beam + seed, V=V, structured=seed % 4 != 3)
        ref = _funasr_beam(am, ctc, beam, ctc_weight, penalty, full_vocab)
        ours = beam_search(
            am,
            beam_size=beam,
            ctc_logp=ctc if ctc_weight > 0 else None,
            ctc_weight=ctc_weight,
            penalty=penalty,
            ctc_full_vocab=full_vocab,
        )
        assert len(ours) == len(ref), f"seed {seed}: n-best sizes differ"
        assert ours[0].token_ids == ref[0][0], f"seed {seed}"
        assert [SOS] + ours[0].raw_ids == ref[0][2][: len(ours[0].raw_ids) + 1]
        for h, (ids, score, _) in zip(ours, ref):
            worst = max(worst, abs(h.score - score))
        changed += ours[0].token_ids != greedy_search(am).token_ids
    assert worst < 1e-4, worst
    assert changed > 0


def test_end_detection_matches_funasr():
    """</s> near-certain at position 0 and second best later: hypotheses end at every
    length, more than 10 below the best ended one, so FunASR's end detection fires."""
    pytest.importorskip("funasr")
    fired = 0
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        N, V = 10, 8
        logits = 0.3 * torch.randn(N, V, generator=g)
        logits[0, EOS] += 9.0
        logits[1:, EOS] += 2.0
        logits[torch.arange(1, N), torch.randint(3, V, (N - 1,), generator=g)] += 4.0
        am = torch.log_softmax(logits, -1)
        ctc = torch.log_softmax(torch.randn(14, V, generator=g), -1)
        for w in (0.0, 0.3):
            ref = _funasr_beam(am, ctc, 4, w, 0.0)
            ours = beam_search(am, beam_size=4, ctc_logp=ctc if w else None, ctc_weight=w)
            assert len(ours) == len(ref)
            assert [h.raw_ids for h in ours] == [r[2][1 : 1 + len(h.raw_ids)] for h, r in zip(ours, ref)]
            assert max(abs(h.score - r[1]) for h, r in zip(ours, ref)) < 1e-4
            no_ed = beam_search(am, beam_size=4, ctc_logp=ctc if w else None, ctc_weight=w, end_detect=False)
            fired += len(no_ed) != len(ours)
    assert fired > 0, "end detection never fired; the test does not exercise it"


# ---------------------------------------------------------------------------
# batching
# ---------------------------------------------------------------------------
def _padded_batch(seed, B=4, V=12):
    cases = [_case(seed * 10 + b, V=V) for b in range(B)]
    N = max(a.shape[0] for a, _ in cases) + 2
    T = max(c.shape[0] for _, c in cases) + 3
    g = torch.Generator().manual_seed(seed)
    am = 5.0 * torch.randn(B, N, V, generator=g)  # garbage in the padding
    ctc = 5.0 * torch.randn(B, T, V, generator=g)
    for b, (a, c) in enumerate(cases):
        am[b, : a.shape[0]] = a
        ctc[b, : c.shape[0]] = c
    return cases, am, torch.tensor([a.shape[0] for a, _ in cases]), ctc, torch.tensor([c.shape[0] for _, c in cases])


@pytest.mark.parametrize(
    "opts",
    [SearchOptions(), SearchOptions(beam_size=4), SearchOptions(beam_size=4, ctc_weight=0.4, penalty=0.2, nbest=3)],
)
def test_decode_batch_is_padding_independent(opts):
    for seed in range(5):
        cases, am, am_lens, ctc, ctc_lens = _padded_batch(seed)
        batch = decode_batch_nbest(am, am_lens, opts, ctc, ctc_lens)
        assert len(batch) == len(cases)
        for (a, c), hyps in zip(cases, batch):
            alone = decode_batch_nbest(a.unsqueeze(0), torch.tensor([a.shape[0]]), opts, c.unsqueeze(0), None)[0]
            assert 1 <= len(hyps) <= opts.nbest
            assert [(h.token_ids, h.raw_ids, h.score) for h in hyps] == [
                (h.token_ids, h.raw_ids, h.score) for h in alone
            ]
        best = decode_batch(am, am_lens, opts, ctc, ctc_lens)
        assert all(isinstance(h, Hypothesis) for h in best)
        assert [h.token_ids for h in best] == [n[0].token_ids for n in batch]


def test_decode_batch_zero_tokens():
    am = torch.log_softmax(torch.randn(2, 3, 6), -1)
    for opts in (SearchOptions(), SearchOptions(beam_size=3)):
        out = decode_batch(am, torch.tensor([0, 3]), opts)
        assert out[0].token_ids == [] and out[0].score == 0.0


def test_decode_batch_matches_funasr_paraformer_inference():
    """Drive funasr's own Paraformer.inference (dispatch, slicing, id stripping) with fakes."""
    pytest.importorskip("funasr")
    from funasr.models.paraformer.model import Paraformer

    class _IdentityCTC(torch.nn.Module):
        def log_softmax(self, x):
            return x

    V = 12
    for seed in range(4):
        cases, am, am_lens, ctc, ctc_lens = _padded_batch(100 + seed, V=V)
        for opts in (
            SearchOptions(),
            SearchOptions(beam_size=5, ctc_weight=0.3),
            SearchOptions(beam_size=3, ctc_weight=0.5, penalty=0.3),
        ):
            fake = types.SimpleNamespace(
                beam_search=None,
                ctc=_IdentityCTC(),
                ctc_weight=0.3,  # the model's training ctc_weight (!= 1.0 -> pre-beam)
                sos=SOS,
                eos=EOS,
                blank_id=BLANK,
                encode=lambda s, lens: (ctc.clone(), ctc_lens),
                calc_predictor=lambda e, lens: (None, am_lens.float(), None, None),
                cal_decoder_with_predictor=lambda e, el, emb, tl: (am, am_lens),
            )
            fake.init_beam_search = types.MethodType(Paraformer.init_beam_search, fake)
            results, _ = Paraformer.inference(
                fake,
                data_in=torch.zeros(len(cases), 5, 3),
                data_lengths=torch.full((len(cases),), 5),
                key=[f"u{b}" for b in range(len(cases))],
                tokenizer=None,
                data_type="fbank",
                device="cpu",
                decoding_ctc_weight=opts.ctc_weight,
                beam_size=opts.beam_size,
                penalty=opts.penalty,
                token_list=[str(i) for i in range(V)],
            )
            ours = decode_batch(am, am_lens, opts, ctc, ctc_lens)
            assert [r["token_int"] for r in results] == [h.token_ids for h in ours]
