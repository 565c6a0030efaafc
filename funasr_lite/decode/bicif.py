"""BiCifParaformer and SeacoParaformer decoding: Paraformer's search (SeACo: on hotword-biased
posteriors), then token times from the upsampled timestamp head.

Token times follow FunASR 1.4.16's ``ts_prediction_lfr6_standard`` (the definition below is ours):

1. The timestamp head's sub-frame weights (3 sub-frames of 20 ms per 60 ms frame), rescaled to sum to the
   token count N, are integrated and fired like CIF with threshold ``1 - 1e-4``, in float32, one sub-frame
   at a time (the running sum loses ``1 - 1e-4`` at each fire). A sub-frame fires when the sum reaches the
   threshold.
2. FunASR expects N + 1 fires. It never gets them from weights that sum to N, so it rescales the weights
   to sum to N + 1 (``w / (sum(w) / (N + 1))`` in float32, in place) and fires again.
3. Fire positions shifted by -1.5 sub-frames are the token boundaries: token i spans fires i .. i+1. A
   span longer than 12 sub-frames is cut after 12 (the rest is silence). Leading silence (first fire past
   sub-frame 5) is not a token. If the last fire is more than 5 sub-frames before the end, the last token
   ends halfway to the end, else the last token ends at the end.
4. Times are ``int(seconds * 1000)`` ms. Words then get their times as FunASR's ``sentence_postprocess``
   gives them (:func:`~funasr_lite.data.tokenizer.postprocess_tokens_timed`), and the text is the
   words joined with spaces.

FunASR slices the head's weights to ``3 x`` the encoder length and uses 20 ms sub-frames whatever
``upsample_times`` is; the ModelScope models have ``upsample_times: 3``, and we use the predictor's value.
"""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from funasr_lite.data.tokenizer import Tokenizer, postprocess_tokens_timed
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.decode.search import Hypothesis
from funasr_lite.decode.transcribe import search_encoded

__all__ = ["search_bicif", "search_seaco", "timed_results", "fire_sums", "upsampled_token_times"]

FIRE_THRESHOLD = 1.0 - 1e-4  # FunASR's timestamp CIF threshold
FIRE_SHIFT = -1.5  # sub-frames added to each fire position
EDGE_SUBFRAMES = 5  # leading/trailing silence longer than this is not part of a token
MAX_TOKEN_SUBFRAMES = 12  # a token lasts at most this long; the rest of its span is silence


def fire_sums(alphas: np.ndarray, threshold: float = FIRE_THRESHOLD) -> np.ndarray:
    """Sequential float32 integrate-and-fire without hidden vectors: (T,) weights -> (T,) running sums
    before each fire's subtraction (a sub-frame fired where its value is >= ``threshold``)."""
    thr = np.float32(threshold)
    out = np.empty(len(alphas), dtype=np.float32)
    acc = np.float32(0.0)
    for t, a in enumerate(alphas.astype(np.float32, copy=False)):
        acc = np.float32(acc + a)
        out[t] = acc
        if acc >= thr:
            acc = np.float32(acc - thr)
    return out


def _fires(sums: np.ndarray) -> np.ndarray:
    return np.nonzero(sums >= np.float32(FIRE_THRESHOLD))[0] + FIRE_SHIFT


def upsampled_token_times(
    alphas: torch.Tensor, num_tokens: int, frame_ms: float = 60.0, upsample_times: int = 3
) -> List[List[int]]:
    """Token ``[start_ms, end_ms]`` from one utterance's rescaled timestamp-head weights (see the module doc).

    alphas: (S,) float32 sub-frame weights (``alphas`` itself is divided in place when step 2 applies, as
    FunASR does); num_tokens: N; frame_ms: one encoder frame, of ``upsample_times`` sub-frames. Returns one pair per token, fewer when the
    weights fire fewer than N + 1 times (FunASR's behaviour).
    """
    if num_tokens == 0:
        return []
    fires = _fires(fire_sums(alphas.detach().cpu().numpy()))
    if len(fires) != num_tokens + 1:
        alphas /= alphas.sum() / (num_tokens + 1)
        fires = _fires(fire_sums(alphas.detach().cpu().numpy()))
    rate = frame_ms / 1000 / upsample_times  # seconds per sub-frame (FunASR: 10.0 * 6 / 1000 / 3)
    n_sub = alphas.shape[0]
    spans: List[List[float]] = []  # [start_s, end_s] per item
    is_token: List[bool] = []
    if fires[0] > EDGE_SUBFRAMES:
        spans.append([0.0, fires[0] * rate])
        is_token.append(False)
    for i in range(len(fires) - 1):
        if fires[i + 1] - fires[i] <= MAX_TOKEN_SUBFRAMES:
            spans.append([fires[i] * rate, fires[i + 1] * rate])
            is_token.append(True)
        else:
            cut = fires[i] + MAX_TOKEN_SUBFRAMES
            spans += [[fires[i] * rate, cut * rate], [cut * rate, fires[i + 1] * rate]]
            is_token += [True, False]
    if n_sub - fires[-1] > EDGE_SUBFRAMES:
        end = (n_sub + fires[-1]) * 0.5
        spans[-1][1] = end * rate
        spans.append([end * rate, n_sub * rate])
        is_token.append(False)
    elif spans:
        spans[-1][1] = n_sub * rate
    out = [[int(a * 1000), int(b * 1000)] for (a, b), tok in zip(spans, is_token) if tok]
    return out[:num_tokens]


def search_bicif(
    model,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    frame_ms: float = 60.0,
) -> List[Dict[str, Any]]:
    """BiCifParaformer's decode entry: one result dict per utterance (text: words joined by spaces,
    tokens, token_ids, score, timestamp: ``[start_ms, end_ms]`` per word).

    model: a :class:`~funasr_lite.models.bicif.BiCifParaformer` in eval mode; feats (B, T, D), feat_lens (B,);
    frame_ms: one encoder frame (of the predictor's ``upsample_times`` sub-frames).
    """
    found = search_encoded(model, feats, feat_lens, options, tokenizer)
    return timed_results(model, tokenizer, found, frame_ms)


def timed_results(model, tokenizer: Tokenizer, found: tuple, frame_ms: float) -> List[Dict[str, Any]]:
    """Result dicts with timestamp-head token times from the output of
    :func:`~funasr_lite.decode.transcribe.search_encoded` (see :func:`search_bicif`)."""
    hyps_nbest, _, enc, enc_lens, token_lens = found
    us_alphas = None
    if int(token_lens.max()) >= 1:
        with torch.no_grad():
            us_alphas, us_lens = model.timestamp_alphas(enc, enc_lens, token_lens)
    upsample = model.predictor.upsample_times
    results = []
    for b, nbest in enumerate(hyps_nbest):
        hyp = nbest[0] if nbest else Hypothesis([], 0.0)
        ids = list(hyp.token_ids)
        tokens = tokenizer.ids_to_tokens(ids)
        stamps: Sequence[Sequence[int]] = []
        if us_alphas is not None and tokens:
            row = us_alphas[b, : int(us_lens[b])].clone()
            stamps = upsampled_token_times(row, len(tokens), frame_ms=frame_ms, upsample_times=upsample)
        text, _, word_stamps = postprocess_tokens_timed(tokens, stamps)
        results.append(
            {"text": text, "tokens": tokens, "token_ids": ids, "score": float(hyp.score), "timestamp": word_stamps}
        )
    return results


def search_seaco(
    model,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    frame_ms: float = 60.0,
    hotwords: Optional[List[List[int]]] = None,
) -> List[Dict[str, Any]]:
    """SeacoParaformer's decode entry: :func:`search_bicif` on the decoder posteriors merged with the
    hotword head's (:meth:`~funasr_lite.models.seaco.SeacoParaformer.biased_log_probs`).

    hotwords: the hotwords' token ids (tokenised, without the no-bias entry, which the model appends);
    None: no biasing (a plain BiCif decode); ``[]``: only the no-bias entry (FunASR's ``hotword=""``).
    """

    def scores(enc, enc_lens, embeds, token_lens):
        return model.biased_log_probs(enc, enc_lens, embeds, token_lens, hotwords)

    found = search_encoded(model, feats, feat_lens, options, tokenizer, decode_logits=scores)
    return timed_results(model, tokenizer, found, frame_ms)
