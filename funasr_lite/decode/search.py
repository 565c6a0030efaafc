"""Paraformer search: greedy and FunASR-exact beam search with CTC prefix scores.

Paraformer's decoder is non-autoregressive: for one utterance it gives per-position
log-probs ``am_logp (N, V)`` where the length N is fixed by the CIF token count. The
search therefore never changes the length, it only picks one token per position.

* greedy search is FunASR's default path (beam 1, no CTC, no LM): argmax per
  position, ``score = sum of the per-position max log-probs`` (in the input dtype).
* :func:`beam_search` reproduces FunASR 1.x ``BeamSearchPara`` as built by
  ``Paraformer.init_beam_search``:

  - the step score of token ``c`` at position ``i`` is
    ``am_logp[i, c] + penalty + ctc_weight * (psi(g + c) - psi(g))``; the decoder
    log-probs are added *unweighted* (FunASR sets ``decoder = 1 - ctc_weight`` in its
    weights but never registers a decoder scorer, so that weight is unused);
  - with CTC, only a pre-beam of ``int(1.5 * beam_size)`` tokens (the best by
    ``am_logp[i] + penalty``, the same for every hypothesis) is CTC-scored and may be
    chosen, unless that pre-beam would cover the whole vocabulary;
  - the CTC prefix score gives ``<blank>`` log-prob -1e10 and gives ``</s>`` the
    probability of the whole utterance ending with the prefix;
  - choosing ``</s>`` before the last position ends a hypothesis early; after the last
    position ``</s>`` is appended for free; FunASR's end detection (maxlenratio 0) may
    stop the search once three consecutive lengths of ended hypotheses are all more
    than 10 below the best ended one;
  - the n-best list is every ended hypothesis, best first.

  Our CTC prefix scorer is vectorised over hypotheses, candidates *and* frames (the
  forward recursion is solved in closed form with ``logcumsumexp`` in float64), so a
  search step is a handful of tensor ops instead of a Python loop over frames.
* :func:`decode_batch_nbest` decodes a padded batch with :class:`DecodingOptions`; each
  utterance is cut to its own length first, so results never depend on padding.

Token ids returned are stripped like FunASR does: ``<blank>``, ``<s>`` and ``</s>``
(ids 0, 1, 2 by default) are removed wherever they occur.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from funasr_lite.decode.options import DecodingOptions

__all__ = ["Hypothesis", "beam_search", "ctc_prefix_scores", "ctc_extend_state", "decode_batch_nbest"]

# FunASR's "log zero" in its CTC prefix scorer (a finite number, not -inf).
LOGZERO = -1e10
# FunASR's pre-beam size is int(PRE_BEAM_RATIO * beam_size).
PRE_BEAM_RATIO = 1.5
# End detection: M consecutive ended lengths, each worse than the best by more than -D_END.
END_DETECT_M = 3
END_DETECT_D = -10.0


@dataclass
class Hypothesis:
    """One decoding result for one utterance."""

    # Output token ids with <blank>, <s> and </s> removed (what FunASR maps to text).
    token_ids: List[int]
    # Total score (float): greedy = sum of max log-probs; beam = accumulated step scores.
    score: float
    # Ids chosen per position before stripping (no leading <s>, no appended </s>);
    # shorter than N when the hypothesis chose </s> early.
    raw_ids: List[int] = field(default_factory=list)


def _strip(ids: Sequence[int], blank_id: int, sos_id: int, eos_id: int) -> List[int]:
    drop = {blank_id, sos_id, eos_id}
    return [int(t) for t in ids if int(t) not in drop]


def _check_2d(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor, got {shape}")


def _ctc_init_n(ctc_logp: torch.Tensor, prefix_len: int, labels: torch.Tensor) -> torch.Tensor:
    """r^n[s-1] of prefix+label: x_label[0] for the empty prefix, else log zero. Shape of labels."""
    if prefix_len == 0:
        return ctc_logp[0, labels]
    return torch.full(labels.shape, LOGZERO, dtype=torch.float64)


def ctc_prefix_scores(
    ctc_logp: torch.Tensor,
    r_prev: torch.Tensor,
    prefix_len: int,
    last_ids: torch.Tensor,
    cand_ids: torch.Tensor,
    *,
    blank_id: int = 0,
    eos_id: int = 2,
    chunk: int = 2048,
) -> torch.Tensor:
    """CTC prefix log-probs psi(g + c) for H prefixes g times K candidates c, vectorised.

    Same quantity as ESPnet/FunASR ``CTCPrefixScore`` (Watanabe et al., hybrid
    CTC/attention, Alg. 2): with s = max(L, 1),
    psi = logsumexp(r^n[s-1], phi[t-1] + x_c[t] for t = s..T-1), where
    phi = log(r^n(g) + r^b(g)) except phi = r^b(g) when c repeats g's last label.
    ``<blank>`` gets -1e10, ``</s>`` gets log(r^n_T(g) + r^b_T(g)) (g is the whole utterance).

    Args:
        ctc_logp: (T, V) float64 CTC log-probs of the utterance.
        r_prev: (H, T, 2) float64 forward variables [non-blank, blank] of the prefixes.
        prefix_len: L, labels in every prefix (without <s>); all prefixes share it.
        last_ids: (H,) last label of each prefix (unused when L == 0).
        cand_ids: (K,) candidate labels shared by all prefixes.
        chunk: candidates per chunk, bounds memory at H*chunk*T floats.
    Returns:
        psi (H, K) float64.
    """
    H, T = r_prev.shape[0], r_prev.shape[1]
    K = cand_ids.shape[0]
    L = int(prefix_len)
    s = max(L, 1)
    r_sum = torch.logaddexp(r_prev[..., 0], r_prev[..., 1])  # (H, T)
    psi = torch.full((H, K), LOGZERO, dtype=torch.float64)
    if s - 1 < T:  # else the prefix is longer than the frames allow: log zero
        for k0 in range(0, K, chunk):
            c = cand_ids[k0 : k0 + chunk]
            xc = ctc_logp[s:T, c].t().unsqueeze(0)  # (1, k, T-s): x_c[t], t = s..T-1
            terms = r_sum[:, s - 1 : T - 1].unsqueeze(1) + xc  # (H, k, T-s)
            if L > 0:
                hit_h, hit_k = torch.nonzero(last_ids.view(H, 1) == c.view(1, -1), as_tuple=True)
                if hit_h.numel() > 0:
                    terms[hit_h, hit_k] = r_prev[hit_h, s - 1 : T - 1, 1] + xc[0, hit_k]
            init = _ctc_init_n(ctc_logp, L, c).view(1, -1, 1).expand(H, -1, 1)
            psi[:, k0 : k0 + chunk] = torch.logsumexp(torch.cat([init, terms], dim=-1), dim=-1)
    psi = torch.where((cand_ids == eos_id).view(1, K), r_sum[:, -1:].expand(H, K), psi)
    psi = torch.where((cand_ids == blank_id).view(1, K), torch.full_like(psi, LOGZERO), psi)
    return psi


def ctc_extend_state(
    ctc_logp: torch.Tensor,
    r_prev: torch.Tensor,
    prefix_len: int,
    last_ids: torch.Tensor,
    labels: torch.Tensor,
    *,
    blank_id: int = 0,
) -> torch.Tensor:
    """Forward variables of M extended prefixes g_m + labels[m].

    The recursion, for t >= s = max(L, 1),
        r^n[t] = logaddexp(r^n[t-1], phi[t-1]) + x_c[t]
        r^b[t] = logaddexp(r^n[t-1], r^b[t-1]) + x_blank[t]
    is solved in closed form (float64): with A[t] = sum_{s<=u<=t} x_c[u],
    r^n[t] = A[t] + logcumsumexp(r^n[s-1], phi[s-1]-A[s-1], ..., phi[t-1]-A[t-1]),
    and likewise r^b with the blank log-probs. Rows before s-1 are log zero (never read).

    Args:
        ctc_logp: (T, V) float64; r_prev: (M, T, 2) float64 states of the prefixes;
        prefix_len: L of every prefix; last_ids, labels: (M,).
    Returns:
        (M, T, 2) float64 forward variables [non-blank, blank] of the extended prefixes.
    """
    M, T = r_prev.shape[0], r_prev.shape[1]
    L = int(prefix_len)
    s = max(L, 1)
    dt = torch.float64
    r_new = torch.full((M, T, 2), LOGZERO, dtype=dt)
    if s - 1 >= T:
        return r_new
    init_n = _ctc_init_n(ctc_logp, L, labels)  # (M,)
    r_new[:, s - 1, 0] = init_n
    if T == s:
        return r_new
    r_sum = torch.logaddexp(r_prev[..., 0], r_prev[..., 1])  # (M, T)
    phi = r_sum[:, s - 1 : T - 1]
    if L > 0:
        repeat = (labels == last_ids).view(M, 1)
        phi = torch.where(repeat, r_prev[:, s - 1 : T - 1, 1], phi)
    xc = ctc_logp[s:T, labels].t()  # (M, T-s)
    A = torch.cumsum(xc, dim=1)
    A_prev = torch.cat([torch.zeros(M, 1, dtype=dt), A[:, :-1]], dim=1)
    seq_n = torch.cat([init_n.view(M, 1), phi - A_prev], dim=1)
    rn = A + torch.logcumsumexp(seq_n, dim=1)[:, 1:]  # (M, T-s)
    r_new[:, s:, 0] = rn
    B = torch.cumsum(ctc_logp[s:T, blank_id], dim=0).view(1, T - s)
    B_prev = torch.cat([torch.zeros(1, 1, dtype=dt), B[:, :-1]], dim=1)
    rn_prev = torch.cat([init_n.view(M, 1), rn[:, :-1]], dim=1)  # r^n[t-1]
    init_b = torch.full((M, 1), LOGZERO, dtype=dt)
    seq_b = torch.cat([init_b, rn_prev - B_prev], dim=1)
    r_new[:, s:, 1] = B + torch.logcumsumexp(seq_b, dim=1)[:, 1:]
    return r_new


def _end_detect(ended_lens: List[int], ended_scores: List[float], i: int) -> bool:
    """FunASR/ESPnet `end_detect` (Watanabe et al. eq. 50); lengths count <s> and </s>."""
    if not ended_scores:
        return False
    best = max(ended_scores)
    for m in range(END_DETECT_M):
        same = [sc for ln, sc in zip(ended_lens, ended_scores) if ln == i - m]
        if not (same and max(same) - best < END_DETECT_D):
            return False
    return True


def beam_search(
    am_logp: torch.Tensor,
    *,
    beam_size: int,
    ctc_logp: Optional[torch.Tensor] = None,
    ctc_weight: float = 0.0,
    penalty: float = 0.0,
    blank_id: int = 0,
    sos_id: int = 1,
    eos_id: int = 2,
    ctc_full_vocab: bool = False,
    end_detect: bool = True,
) -> List[Hypothesis]:
    """FunASR ``BeamSearchPara`` over one utterance's fixed-length decoder output.

    Args:
        am_logp: (N, V) decoder log-probs of one utterance (cut to its token count).
        beam_size: beam width (>= 1).
        ctc_logp: (T, V) CTC log-probs over the utterance's encoder frames (cut to its
            length); required when ctc_weight != 0.
        ctc_weight: weight of the CTC prefix score delta.
        penalty: length bonus added per step.
        ctc_full_vocab: CTC-score the whole vocabulary (no pre-beam).
        end_detect: FunASR's end detection (maxlenratio 0.0).
    Returns:
        All ended hypotheses, best first (FunASR's n-best list). For N == 0, a single
        empty hypothesis with score 0.0 (FunASR returns no result there).
    Scores are accumulated in am_logp's dtype in FunASR's order of additions.
    """
    _check_2d("am_logp", am_logp)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    N, V = am_logp.shape
    use_ctc = ctc_weight != 0.0
    if use_ctc:
        if ctc_logp is None:
            raise ValueError(
                f"ctc_weight={ctc_weight} needs CTC log-probs (a model with a CTC head); got ctc_logp=None"
            )
        _check_2d("ctc_logp", ctc_logp)
        if ctc_logp.shape[1] != V:
            raise ValueError(f"ctc_logp has {ctc_logp.shape[1]} classes but am_logp has {V}")
        if ctc_logp.shape[0] == 0:
            raise ValueError("ctc_logp has no frames (T == 0)")
    if N == 0:
        return [Hypothesis(token_ids=[], score=0.0, raw_ids=[])]

    am = am_logp.detach().cpu()
    dtype = am.dtype
    pre_beam_size = int(PRE_BEAM_RATIO * beam_size)
    do_pre_beam = use_ctc and not ctc_full_vocab and pre_beam_size < V
    if use_ctc:
        ctc = ctc_logp.detach().cpu().to(torch.float64)
        r_run = torch.full((1, ctc.shape[0], 2), LOGZERO, dtype=torch.float64)  # (H, T, 2): the empty prefix
        r_run[0, :, 1] = torch.cumsum(ctc[:, blank_id], dim=0)
        psi_run = torch.zeros(1, dtype=torch.float64)  # psi of each running prefix
    all_ids = torch.arange(V)
    run_ids: List[List[int]] = [[]]  # labels of running hypotheses (no <s>)
    run_score = torch.zeros(1, dtype=dtype)
    ended: List[Hypothesis] = []
    ended_lens: List[int] = []  # len(yseq) incl. <s> (and </s>), as FunASR's end_detect sees it

    for i in range(N):
        H = len(run_ids)
        base = am[i].clone()
        if penalty != 0.0:
            base += penalty * torch.ones(V, dtype=dtype)
        if use_ctc:
            cand = torch.topk(base, pre_beam_size)[1] if do_pre_beam else all_ids
            last = torch.tensor([ids[-1] if ids else sos_id for ids in run_ids])
            psi = ctc_prefix_scores(ctc, r_run, i, last, cand, blank_id=blank_id, eos_id=eos_id)
            delta = (psi - psi_run.view(H, 1)).to(dtype)
            cand_scores = base[cand].unsqueeze(0) + ctc_weight * delta  # (H, K)
        else:
            cand = all_ids
            cand_scores = base.unsqueeze(0).expand(H, V)
        cand_scores = cand_scores + run_score.view(H, 1)
        k = min(beam_size, cand.shape[0])
        top_sc, top_pos = torch.topk(cand_scores, k, dim=1)  # each row best first
        flat_sc = top_sc.reshape(-1)
        order = torch.sort(flat_sc, descending=True, stable=True)[1][:beam_size]
        hyp_idx = (order // k).tolist()
        pos_idx = top_pos.reshape(-1)[order]
        tok = cand[pos_idx].tolist()
        new_scores = flat_sc[order]

        keep_rows: List[int] = []
        next_ids: List[List[int]] = []
        for j, (h, t) in enumerate(zip(hyp_idx, tok)):
            ids = run_ids[h] + [int(t)]
            if i == N - 1 or t == eos_id:
                # FunASR appends </s> after the last position; yseq = <s> + ids (+ </s>).
                ended_lens.append(1 + len(ids) + (1 if i == N - 1 else 0))
                ended.append(Hypothesis(_strip(ids, blank_id, sos_id, eos_id), float(new_scores[j]), ids))
            else:
                keep_rows.append(j)
                next_ids.append(ids)
        if use_ctc and keep_rows:
            rows = torch.tensor(keep_rows)
            sel_h = torch.tensor(hyp_idx)[rows]
            sel_p = pos_idx[rows]
            r_run = ctc_extend_state(ctc, r_run[sel_h], i, last[sel_h], cand[sel_p], blank_id=blank_id)
            psi_run = psi[sel_h, sel_p]
        run_ids = next_ids
        run_score = new_scores[torch.tensor(keep_rows, dtype=torch.long)]
        if not run_ids or (end_detect and _end_detect(ended_lens, [h.score for h in ended], i)):
            break

    return sorted(ended, key=lambda h: h.score, reverse=True)  # stable: ties keep their order


def decode_batch_nbest(
    am_logp: torch.Tensor,
    token_lens: torch.Tensor,
    opts: DecodingOptions,
    ctc_logp: Optional[torch.Tensor] = None,
    ctc_lens: Optional[torch.Tensor] = None,
    *,
    blank_id: int = 0,
    sos_id: int = 1,
    eos_id: int = 2,
) -> List[List[Hypothesis]]:
    """Decode a padded batch; up to ``opts.nbest`` hypotheses per utterance, best first.

    Args:
        am_logp: (B, N, V) decoder log-probs, padded past ``token_lens``.
        token_lens: (B,) CIF token counts.
        ctc_logp: (B, T, V) CTC log-probs, padded past ``ctc_lens`` (needed when
            ``opts`` uses CTC).
        ctc_lens: (B,) encoder lengths; defaults to T for every utterance.
        blank_id, sos_id, eos_id: the tokenizer's ids, stripped from the outputs.
    Greedy when beam_size == 1 and CTC is off, else :func:`beam_search`. Every utterance
    is cut to its own lengths first, so results do not depend on padding.
    """
    opts.check_supported()
    token_lens = torch.as_tensor(token_lens).detach().cpu().long()
    if not isinstance(am_logp, torch.Tensor) or am_logp.dim() != 3:
        raise ValueError("am_logp must be a (B, N, V) tensor")
    B = am_logp.shape[0]
    if token_lens.shape != (B,):
        raise ValueError(f"token_lens must have shape ({B},), got {tuple(token_lens.shape)}")
    if (token_lens < 0).any() or (token_lens > am_logp.shape[1]).any():
        raise ValueError(f"token_lens must be in [0, {am_logp.shape[1]}], got {token_lens.tolist()}")
    if opts.uses_ctc:
        if ctc_logp is None:
            raise ValueError(
                f"ctc_weight={opts.ctc_weight} needs a model with a CTC head, but no CTC "
                "log-probs were given; use ctc_weight 0"
            )
        if ctc_logp.dim() != 3 or ctc_logp.shape[0] != B or ctc_logp.shape[2] != am_logp.shape[2]:
            raise ValueError(f"ctc_logp must be (B={B}, T, V={am_logp.shape[2]}), got {tuple(ctc_logp.shape)}")
        if ctc_lens is None:
            ctc_lens = torch.full((B,), ctc_logp.shape[1], dtype=torch.long)
        ctc_lens = torch.as_tensor(ctc_lens).detach().cpu().long()
        if ctc_lens.shape != (B,) or (ctc_lens < 1).any() or (ctc_lens > ctc_logp.shape[1]).any():
            raise ValueError(f"ctc_lens must be (B,) in [1, {ctc_logp.shape[1]}], got {ctc_lens.tolist()}")
    results: List[List[Hypothesis]] = []
    if not opts.uses_beam:
        best, ids = am_logp.detach().max(dim=-1)  # per position: independent of padding
        best, ids = best.cpu(), ids.cpu()
        for b, n in enumerate(token_lens.tolist()):
            raw = ids[b, :n].tolist()
            results.append([Hypothesis(_strip(raw, blank_id, sos_id, eos_id), float(best[b, :n].sum()), raw)])
        return results
    am_cpu = am_logp.detach().cpu()
    ctc_cpu = ctc_logp.detach().cpu() if opts.uses_ctc else None
    for b, n in enumerate(token_lens.tolist()):
        hyps = beam_search(
            am_cpu[b, :n],
            beam_size=opts.beam_size,
            ctc_logp=ctc_cpu[b, : int(ctc_lens[b])] if ctc_cpu is not None else None,
            ctc_weight=float(opts.ctc_weight) if opts.uses_ctc else 0.0,
            penalty=float(opts.penalty),
            blank_id=blank_id,
            sos_id=sos_id,
            eos_id=eos_id,
            ctc_full_vocab=opts.ctc_full_vocab,
            end_detect=opts.end_detect,
        )
        results.append(hyps[: opts.nbest])
    return results
