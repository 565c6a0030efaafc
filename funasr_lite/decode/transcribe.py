"""Load a Paraformer model dir and transcribe audio: the Python API.

    >>> import funasr_lite
    >>> asr = funasr_lite.load_model("path/to/model_dir", device="cpu")
    >>> asr.transcribe(["a.wav", "b.flac"], batch_size=8)
    [{'key': 'a', 'text': '...', 'tokens': [...], 'token_ids': [...], 'score': -1.2, 'timestamp': [[0, 120], ...]}, ...]

Decoding is padding-invariant: a batched decode gives exactly the results of
decoding each utterance alone (our encoder, predictor and decoder mask padded
frames everywhere; see tests/test_infer.py).
"""

import inspect
import logging
import numbers
import os
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from funasr_lite.config.merge import decoding_layer, merge_layers, model_dir_layers
from funasr_lite.config.schema import ModelConfig
from funasr_lite.data.audio import load_audio, load_audio_array
from funasr_lite.data.frontend import WavFrontend
from funasr_lite.data.tokenizer import Tokenizer, load_seg_dict, load_token_list
from funasr_lite.decode.hotwords import Hotwords, parse_hotword
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.decode.quantize import check_quantize
from funasr_lite.decode.search import Hypothesis, decode_batch_nbest
from funasr_lite.decode.weights import load_decoding_model
from funasr_lite.errors import CheckpointError, ConfigError, FunasrLiteError, NonFiniteError
from funasr_lite.hub.download import resolve_model
from funasr_lite.hub.model_dir import ModelDir, detect_model_dir
from funasr_lite.models.cif import cif_timestamps
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.models.registry import decode_entry
from funasr_lite.utils.device import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

AudioInput = Union[str, "os.PathLike[str]", np.ndarray, torch.Tensor]

ON_ERROR = ("raise", "report")


class Transcriber:
    """A loaded model dir: frontend (dither 0), Paraformer, tokenizer and decoding options.

    Build it with :func:`load_model`.
    """

    def __init__(
        self,
        model_dir: ModelDir,
        device: Optional[str] = None,
        *,
        layers: Sequence[Tuple[str, Mapping[str, Any]]] = (),
        decoding: Optional[DecodingOptions] = None,
        dtype: str = "fp32",
        quantize: Optional[str] = None,
        reuse_saved: bool = True,
    ):
        """``layers``: config layers above the model dir's own (recipe defaults, flags), ``(source, dict)``
        in config.yaml shape; ``decoding`` replaces the merged decoding options outright; ``dtype``: the
        model's precision (``fp32``, ``bf16``, ``fp16`` on GPU only), see :func:`load_model`; ``quantize``:
        ``"int8"``: dynamic int8 Linear layers (CPU only, see :mod:`funasr_lite.decode.quantize`), loaded
        from the dir's saved ``model_quant.pt`` when it matches, else quantized after loading
        (:mod:`funasr_lite.decode.weights`); ``reuse_saved`` False: always quantize the fp32 weights."""
        self.model_dir = model_dir
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)  # ConfigError for fp16 on CPU, before any loading
        check_quantize(quantize, self.device)  # before any loading: a bad value or a GPU fails at once
        if quantize and self.dtype != torch.float32:
            raise ConfigError(f"--quantize {quantize} quantizes an fp32 model: use it with --dtype fp32, not {dtype}")
        self.quantize = quantize
        # 1. config.yaml < decoding.yaml < layers, strictly validated
        self.config = ModelConfig.from_dict(merge_layers(model_dir_layers(model_dir, "infer") + list(layers)))
        self.config.log_ignored_keys(logger)
        # 2. tokenizer: tokens file, else config.yaml's token_list
        token_list = load_token_list(model_dir.tokens) if model_dir.tokens else self.config.tokenizer_conf.token_list
        if not token_list or isinstance(token_list, str):
            raise CheckpointError(model_dir.no_tokens_message())
        seg_dict = load_seg_dict(model_dir.seg_dict) if model_dir.seg_dict else None
        self.tokenizer = Tokenizer(list(token_list), seg_dict)
        # 3. weights: safe load, vocabulary check, strict load (fp32, saved int8, or int8 quantized in memory)
        self.model, weights = load_decoding_model(
            model_dir, self.config, self.tokenizer.vocab_size, self.device, self.dtype, quantize, reuse_saved
        )
        logger.info("model: %s (%s layout), weights %s", model_dir.root, model_dir.layout, weights)
        # 4. frontend from frontend_conf, CMVN from am.mvn (read by the frontend, so a dimension mismatch
        # names the file); inference never dithers
        fc = self.config.frontend_conf
        frontend_conf = dict(fc.kwargs(), dither=0.0)
        frontend_conf.pop("cmvn_file", None)
        self.frontend = WavFrontend(cmvn_file=model_dir.cmvn, **frontend_conf).to(self.device)
        self.sample_rate = fc.fs
        self.frame_ms = fc.frame_ms
        # 5. decoding options: the merged decoding section, unless the caller gave its own; the model
        # class's search (registered with it)
        self.options = decoding or self.config.decoding
        self._search = decode_entry(self.config.model)
        # a model takes hotwords when its decode entry does (a ``hotwords`` parameter)
        self.supports_hotwords = "hotwords" in inspect.signature(self._search).parameters
        self.options.check_supported()
        self.options.check_vocabulary(self.tokenizer.vocab_size)
        if self.options.uses_ctc and self.model.ctc is None:
            raise CheckpointError(
                f"ctc_weight={self.options.ctc_weight} needs a CTC head, but the model "
                f"{model_dir.root} has none (its model_conf.ctc_weight is 0); use --ctc_weight 0"
            )

    def parse_hotword(self, hotword: Optional[str]) -> Optional[Hotwords]:
        """``--hotword`` value (hotwords separated by spaces, or a ``.txt`` file, one per line) -> the model's
        token ids per hotword (:mod:`funasr_lite.decode.hotwords`); unknown hotwords are dropped with a warning.

        Raises:
            ConfigError: the model takes no hotwords, or the value is a URL or a bad / missing file.
        """
        if hotword is None:
            return None
        self._require_hotword_support()
        return parse_hotword(hotword, self.tokenizer)

    def _require_hotword_support(self) -> None:
        if not self.supports_hotwords:
            raise ConfigError(
                f"--hotword: the model {self.model_dir.root} ({self.config.model}) takes no hotwords; "
                "hotwords need a ContextualParaformer or SeacoParaformer model"
            )

    def check_hotwords(self, hotwords: Sequence[Sequence[int]]) -> List[List[int]]:
        """``hotwords`` (token ids per hotword) as lists of ints, checked against the model.

        Raises:
            ConfigError: the model takes no hotwords, or a hotword is empty or not token ids of the vocabulary
                (it names the hotword's index).
        """
        self._require_hotword_support()
        size = self.tokenizer.vocab_size
        if isinstance(hotwords, (str, bytes)) or not isinstance(hotwords, Sequence):
            raise ConfigError(f"hotwords must be a list of token-id lists (one per hotword), got {hotwords!r:.60}")
        out = []
        for i, ids in enumerate(hotwords):
            try:
                ids = [] if isinstance(ids, (str, bytes)) else list(ids)
            except TypeError:
                ids = []
            if not ids:
                raise ConfigError(f"hotword {i} is {hotwords[i]!r:.60}: expected a non-empty list of token ids")
            bad = [t for t in ids if not isinstance(t, numbers.Integral) or isinstance(t, bool) or not 0 <= t < size]
            if bad:
                raise ConfigError(
                    f"hotword {i} has {bad[0]!r:.30}: token ids are integers in [0, {size}) (the model's vocabulary)"
                )
            out.append([int(t) for t in ids])
        return out

    @torch.inference_mode()
    def decode_features(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, hotwords: Optional[Sequence[Sequence[int]]] = None
    ) -> List[Dict[str, Any]]:
        """Decode a padded batch of features.

        Args:
            feats: (B, T, D) LFR+CMVN features; feat_lens: (B,).
            hotwords: token ids per hotword (e.g. ``parse_hotword(...).id_lists()``) biasing every utterance of
                the batch; None: no hotwords. ConfigError for a model without hotword support.
        Returns:
            one dict per utterance: text, tokens, token_ids, score, timestamp ([[start_ms, end_ms], ...]).
        Raises:
            ConfigError: hotwords given to a model class that takes none.
        """
        feats, feat_lens = feats.to(self.device, self.dtype), feat_lens.to(self.device)
        extra: Dict[str, Any] = {}
        if hotwords is not None:
            extra["hotwords"] = self.check_hotwords(hotwords)
        return self._search(self.model, feats, feat_lens, self.options, self.tokenizer, frame_ms=self.frame_ms, **extra)

    @torch.inference_mode()
    def decode_waveforms(
        self, wavs: Sequence[torch.Tensor], hotwords: Optional[Sequence[Sequence[int]]] = None
    ) -> List[Dict[str, Any]]:
        """Decode mono float waveforms at the model's rate as one padded batch (``hotwords``: as
        :meth:`decode_features`)."""
        lengths = torch.tensor([w.numel() for w in wavs], dtype=torch.long)
        padded = torch.nn.utils.rnn.pad_sequence(list(wavs), batch_first=True).float()
        feats, feat_lens = self.frontend(padded.to(self.device), lengths.to(self.device))
        return self.decode_features(feats, feat_lens, hotwords)

    def transcribe(
        self,
        inputs: Sequence[AudioInput],
        batch_size: Optional[int] = None,
        sample_rate: Optional[int] = None,
        on_error: str = "raise",
        hotword: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Transcribe files or arrays; one result dict per input, in input order.

        Args:
            inputs: audio file paths, or 1-D (S,) / 2-D (C, S) arrays or tensors.
            batch_size: utterances per batch (batches are length-sorted, and hold at most
                ``options.batch_seconds`` of audio); default ``options.batch_size``.
            sample_rate: the rate of array inputs (default: the model's rate).
            on_error: what a bad input does (a missing, unreadable or too short file, a decode that fails):
                ``"raise"`` (the default, as whisper's and FunASR AutoModel's APIs do): the first error is raised
                and nothing is returned; ``"report"``: every result gets an ``error`` field, ``None`` when the
                item decoded, else the reason (naming the file or ``input <i>``) with ``text`` ``""``, empty
                ``tokens``/``token_ids``/``timestamp`` and ``score`` ``None``; the other items are decoded
                (a batch that fails is retried item by item, as the data dir job does).
            hotword: hotwords for every input, as FunASR's ``hotword``: words separated by spaces, or the path of
                a ``.txt`` file with one hotword per line (models with hotword support only).

        Raises:
            FunasrLiteError (e.g. :class:`~funasr_lite.errors.AudioError`): a bad input, with ``on_error="raise"``.
            ValueError: ``on_error`` is not one of ``"raise"``, ``"report"``.
            ConfigError: ``hotword`` for a model without hotword support, or a bad hotword file.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {', '.join(map(repr, ON_ERROR))}, got {on_error!r}")
        if isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor)):
            inputs = [inputs]
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        # None (not 0, not any falsy value) means "the model's rate"; a bad rate is an AudioError
        array_rate = self.sample_rate if sample_rate is None else sample_rate
        parsed = self.parse_hotword(hotword)
        hotwords = parsed.id_lists() if parsed is not None else None
        wavs: Dict[int, torch.Tensor] = {}
        keys, names, failed = [], [], {}
        for i, item in enumerate(inputs):
            is_path = isinstance(item, (str, os.PathLike))
            item = os.fspath(item) if is_path else item
            keys.append(os.path.splitext(os.path.basename(item))[0] if is_path else f"input{i}")
            names.append(item if is_path else f"input {i}")
            try:
                if is_path:
                    wavs[i] = load_audio(item, self.sample_rate)
                else:
                    wavs[i] = load_audio_array(item, array_rate, self.sample_rate, name=names[i])
            except FunasrLiteError as e:
                if on_error == "raise":
                    raise
                failed[i] = " ".join(str(e).split())
        seconds = {i: wav.numel() / self.sample_rate for i, wav in wavs.items()}
        decoded: Dict[int, Dict[str, Any]] = {}
        for idx in make_batches(seconds, batch_size or self.options.batch_size, self.options.batch_seconds):
            if on_error == "raise":
                decoded.update(zip(idx, self.decode_waveforms([wavs[i] for i in idx], hotwords)))
            else:
                decode_retrying(self, idx, wavs, decoded, failed, lambda i: names[i], hotwords)
        if on_error == "raise":
            return [{"key": keys[i], **decoded[i]} for i in range(len(keys))]
        return [
            {"key": keys[i], **decoded[i], "error": None}
            if i in decoded
            else {"key": keys[i], **_EMPTY_RESULT, "error": failed[i]}
            for i in range(len(keys))
        ]


def make_batches(durations: Mapping[Hashable, float], batch_size: int, batch_seconds: Optional[float]) -> List[list]:
    """Longest-first batches of the keys of ``durations`` (seconds), bounded by ``batch_size`` items and
    ``batch_seconds`` of audio (0 or None: no bound); ties are ordered by key."""
    batches: List[list] = []
    current: list = []
    total = 0.0
    for key in sorted(durations, key=lambda k: (-durations[k], k)):
        if current and (len(current) >= batch_size or (batch_seconds and total + durations[key] > batch_seconds)):
            batches.append(current)
            current, total = [], 0.0
        current.append(key)
        total += durations[key]
    if current:
        batches.append(current)
    return batches


_EMPTY_RESULT: Dict[str, Any] = {"text": "", "tokens": [], "token_ids": [], "score": None, "timestamp": []}


def decode_retrying(
    asr: Transcriber,
    keys: Sequence[Hashable],
    wavs: Mapping[Hashable, torch.Tensor],
    results: Dict[Any, Dict[str, Any]],
    failed: Dict[Any, str],
    describe: Callable[[Any], str],
    hotwords: Optional[Sequence[Sequence[int]]] = None,
) -> None:
    """Decode ``keys`` as one batch into ``results``; on any error (out of memory, NaN/Inf model output, a bug)
    retry each item alone, so that one item fails alone: ``failed[key]`` becomes
    ``"<describe(key)>: decoding failed: <reason>"``. ``hotwords`` bias every item (see
    :meth:`Transcriber.decode_features`). Used by :meth:`Transcriber.transcribe` and the data dir job."""
    try:
        for key, res in zip(keys, asr.decode_waveforms([wavs[k] for k in keys], hotwords)):
            results[key] = res
    except Exception as e:
        expected = isinstance(e, (RuntimeError, FunasrLiteError))
        why = " ".join(str(e).split())
        why = why if expected else f"{type(e).__name__}: {why}"
        if len(keys) == 1:
            if not expected:
                logger.debug("unexpected error decoding %s", keys[0], exc_info=True)
            failed[keys[0]] = f"{describe(keys[0])}: decoding failed: {why}"
            return
        logger.warning("batch of %d failed (%s); decoding its utterances one by one", len(keys), why[:200])
        for key in keys:
            decode_retrying(asr, [key], wavs, results, failed, describe, hotwords)


def search_paraformer(
    model: Paraformer,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    frame_ms: float = 60.0,
    *,
    decode_logits: Optional[Callable[..., torch.Tensor]] = None,
) -> List[Dict[str, Any]]:
    """Paraformer's decode entry: :func:`search_features`, then per utterance the best hypothesis as a result
    dict (text, tokens, token_ids, score, timestamp: CIF token times from :func:`cif_timestamps`).

    feats (B, T, D), feat_lens (B,); ``frame_ms`` is the duration of one encoder frame; ``decode_logits``: as
    :func:`search_features`."""
    hyps_nbest, alphas, enc_lens, token_lens = search_features(
        model, feats, feat_lens, options, tokenizer, decode_logits=decode_logits
    )
    stamps = cif_timestamps(alphas, enc_lens, token_lens, frame_ms=frame_ms)
    results = []
    for nbest, stamp in zip(hyps_nbest, stamps):
        hyp = nbest[0] if nbest else Hypothesis([], 0.0)  # no token fired
        ids = list(hyp.token_ids)
        results.append(
            {
                "text": tokenizer.decode(ids)[0],
                "tokens": tokenizer.ids_to_tokens(ids),
                "token_ids": ids,
                "score": float(hyp.score),
                "timestamp": _token_times(hyp, stamp, tokenizer),
            }
        )
    return results


def search_features(
    model: Paraformer,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    *,
    decode_logits: Optional[Callable[..., torch.Tensor]] = None,
) -> Tuple[List[List[Any]], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder, CIF, decoder and search over a padded feature batch (no gradients are kept).

    Args:
        model: a Paraformer in eval mode; feats: (B, T, D); feat_lens: (B,).
        options: greedy/beam options (CTC scores are added when ``options.uses_ctc``).
        tokenizer: gives the blank/sos/eos ids stripped from the hypotheses.
        decode_logits: the decoder call ``(enc, enc_lens, embeds, token_lens) -> (B, N, V) log-probs``; default
            ``model.decode_logits`` (a hotword model's entry passes one with its hotword context).
    Returns:
        (n-best hypotheses per utterance (empty list when no token fired), alphas (B, T+1),
        encoder lengths (B,), token counts (B,)).
    """
    hyps, alphas, _, enc_lens, token_lens = search_encoded(
        model, feats, feat_lens, options, tokenizer, decode_logits=decode_logits
    )
    return hyps, alphas, enc_lens, token_lens


def search_encoded(
    model: Paraformer,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    *,
    decode_logits: Optional[Callable[..., torch.Tensor]] = None,
) -> Tuple[List[List[Any]], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`search_features` that also returns the encoder output: (hypotheses, alphas, enc (B, T, D),
    encoder lengths, token counts), for models whose decode entry needs more than the hypotheses.
    ``decode_logits(enc, enc_lens, embeds, token_lens) -> (B, N, V)`` log-probs replaces ``model.decode_logits``."""
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
        require_finite(enc, enc_lens, "the encoder output")
        embeds, token_num, alphas, _ = model.calc_predictor(enc, enc_lens)  # NonFiniteError on NaN alphas
        token_lens = token_num.round().long()
        if int(token_lens.max()) < 1:
            return [[] for _ in range(feats.size(0))], alphas, enc, enc_lens, token_lens
        am_logp = (decode_logits or model.decode_logits)(enc, enc_lens, embeds, token_lens).float()
        require_finite(am_logp, token_lens, "the decoder output")
        ctc_logp = model.ctc.log_softmax(enc).float() if options.uses_ctc else None
        if ctc_logp is not None:
            require_finite(ctc_logp, enc_lens, "the CTC output")
        hyps = decode_batch_nbest(
            am_logp,
            token_lens,
            options,
            ctc_logp=ctc_logp,
            ctc_lens=enc_lens,
            blank_id=tokenizer.blank_id,
            sos_id=tokenizer.sos_id,
            eos_id=tokenizer.eos_id,
        )
    return hyps, alphas, enc, enc_lens, token_lens


def require_finite(x: torch.Tensor, lens: torch.Tensor, what: str) -> None:
    """Raise :class:`NonFiniteError` when a (B, T, ...) batch holds NaN/Inf in the first ``lens[b]`` steps of a
    row (padding is not looked at), naming ``what`` and the rows; the caller decodes the rows one by one."""
    steps = torch.arange(x.size(1), device=x.device)[None, :] < lens.to(x.device)[:, None]
    flat = x.flatten(2)  # NaN propagates through amax/amin: no (B, T, ...) temporaries (logits are 70+ MB)
    bad = ~(torch.isfinite(flat.amax(-1)) & torch.isfinite(flat.amin(-1))) & steps
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(-1)).flatten().tolist()
        where = f" (batch rows {rows})" if x.size(0) > 1 else ""
        raise NonFiniteError(f"{what} is NaN/Inf{where}: the model's weights or the features are not finite")


def _token_times(hyp, stamps: List[Tuple[int, int]], tokenizer: Tokenizer) -> List[List[int]]:
    """Timestamps of the kept tokens: CIF positions whose id was not dropped (blank/sos/eos)."""
    dropped = {tokenizer.blank_id, tokenizer.sos_id, tokenizer.eos_id}
    return [list(stamps[pos]) for pos, tid in enumerate(hyp.raw_ids) if tid not in dropped and pos < len(stamps)]


def load_model(
    model: str,
    device: Optional[str] = None,
    *,
    checkpoint: Optional[str] = None,
    decoding: Optional[DecodingOptions] = None,
    config_overrides: Optional[Mapping[str, Any]] = None,
    dtype: str = "fp32",
    quantize: Optional[str] = None,
) -> Transcriber:
    """Load a Paraformer from a local model dir or a ModelScope id.

    Args:
        model: a model dir (FunASR 1.x or 0.x layout) or a hub id such as
            ``iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch``.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default cuda when available.
        checkpoint: a weights file in the dir to use instead of the layout's
            (e.g. ``valid.acc.ave.pb`` in a finetune output dir).
        decoding: decoding options; default: the dir's decoding.yaml, else :class:`DecodingOptions`' defaults.
        config_overrides: decoding.yaml-style keys that win over the dir's files.
        dtype: the model's precision while decoding: ``fp32`` (default), ``bf16``, or ``fp16`` (GPU only,
            ConfigError on CPU). The frontend and CMVN, the CIF predictor and the log-softmax stay float32.
        quantize: ``"int8"``: dynamic int8 quantization of the Linear layers (CPU only; a CUDA device is a
            ConfigError), loaded from the dir's ``model_quant.pt`` when its sidecar matches (see
            :mod:`funasr_lite.decode.quantized_dir`; a dir with only that file needs it); None: fp32.
    """
    target = resolve_device(device)  # a bad device, dtype or quantize mode fails before any download or load
    resolve_dtype(dtype, target)
    check_quantize(quantize, target)
    layers = [("decoding overrides", decoding_layer(dict(config_overrides)))] if config_overrides else []
    return Transcriber(
        detect_model_dir(resolve_model(model), checkpoint=checkpoint, quantized_only_ok=quantize is not None),
        device=device,
        layers=layers,
        decoding=decoding,
        dtype=dtype,
        quantize=quantize,
    )
