"""One recording through VAD, ASR and punctuation: FunASR 1.4.16's ``AutoModel(model, vad_model, punc_model)``.

    >>> from funasr_lite.pipeline.long_audio import load_pipeline
    >>> pipe = load_pipeline("asr_dir", vad_model="fsmn-vad", punc_model="ct-punc", device="cpu")
    >>> r = pipe.transcribe_waveform(wav)          # wav: (S,) float32 at pipe.sample_rate
    >>> r["text"], r["sentence_info"][0]
    ('今天开会，明天出发。', {'text': '今天开会，', 'start': 370, 'end': 1210, 'timestamp': [[370, 530], ...]})

Steps, as FunASR takes them:

1. the VAD splits the waveform into ``[[start_ms, end_ms], ...]`` (no VAD: one segment, the whole file);
2. the segments are sorted by length (stable) and cut into batches by :func:`segment_batches`; each batch is
   sliced out of the waveform (``samples = ms * rate // 1000``), decoded in forward passes of at most the ASR
   model's ``batch_size`` segments and ``batch_seconds`` seconds of audio (a longer segment alone), and freed,
   so memory follows the forward pass, not the batch or the file (our decode is padding-invariant: the
   batching changes no text, token or time, only the last digits of a score, a float sum over a padded batch);
3. each segment's token times are shifted by its start; the texts are joined (:mod:`~funasr_lite.pipeline.
   sentences`); tokens, ids, times follow in time order and the scores add up;
4. the punctuation model punctuates the joined text; sentences are cut at its marks, or are the VAD segments
   when the punctuation ids and token times do not pair up (or there is no punctuation model).

Unlike FunASR, a recording whose text is empty gives a result (empty text, no sentences) instead of vanishing,
and the punctuation model is not asked to punctuate an empty text; ``sentence_info`` is always there.
"""

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from funasr_lite.data.audio import MIN_FRAME_MS
from funasr_lite.decode.options import MAX_BATCH_SIZE
from funasr_lite.decode.transcribe import Transcriber, make_batches
from funasr_lite.errors import AudioError, ConfigError, FunasrLiteError, ModelDirError
from funasr_lite.pipeline.sentences import (
    join_raw_texts,
    join_segment_texts,
    segment_sentences,
    shift_timestamps,
    split_sentences,
)
from funasr_lite.utils.memory import release_free_memory

__all__ = ["LongAudioPipeline", "PipelineError", "segment_batches", "load_pipeline", "resolve_stage_model", "STAGES"]

logger = logging.getLogger(__name__)

# the stages whose wall seconds LongAudioPipeline.stage_seconds adds up
STAGES = ("vad", "asr", "punc")


class PipelineError(FunasrLiteError):
    """A recording cannot go through the pipeline: a segment fails to decode, or is longer than allowed."""


def segment_batches(
    segments: Sequence[Sequence[int]], batch_size_s: int, batch_size_threshold_s: int
) -> List[List[int]]:
    """Batches of segment indices, FunASR's rule (its GPU path; on CPU FunASR decodes one segment at a time).

    Segments are taken shortest first (a stable sort by ``end - start``). A batch closes after segment ``j``
    when ``j`` is the last segment, or is ``batch_size_threshold_s`` or longer, or when
    ``len(j) * (segments in the batch, j included)`` reaches ``max(batch_size_s * 1000, shortest segment)``:
    the segment that overflows the budget still joins the batch it overflows.

    Args:
        segments: ``[[start_ms, end_ms], ...]``.
        batch_size_s, batch_size_threshold_s: whole seconds (FunASR truncates them to int).
    Returns:
        lists of indices into ``segments``, in decoding order.
    """
    order = sorted(range(len(segments)), key=lambda i: segments[i][1] - segments[i][0])
    if not order:
        return []
    budget = max(int(batch_size_s) * 1000, 1)
    budget = max(budget, segments[order[0]][1] - segments[order[0]][0])
    threshold = int(batch_size_threshold_s) * 1000
    batches: List[List[int]] = []
    current: List[int] = []
    longest = 0
    for j, idx in enumerate(order):
        length = segments[idx][1] - segments[idx][0]
        current.append(idx)
        if j < len(order) - 1 and length < threshold and max(longest, length) * len(current) < budget:
            longest = max(longest, length)
            continue
        batches.append(current)
        current, longest = [], length
    return batches


def _check_segments(segments: Any) -> List[List[int]]:
    """The VAD's output as ``[[start_ms, end_ms], ...]`` of ints, or a PipelineError saying what is wrong."""
    out = []
    for seg in segments:
        if len(seg) != 2 or not all(isinstance(v, (int, float)) for v in seg) or not 0 <= seg[0] <= seg[1]:
            raise PipelineError(
                f"the VAD returned a bad segment {seg!r} (expected [start_ms, end_ms], 0 <= start <= end)"
            )
        out.append([int(seg[0]), int(seg[1])])
    return out


class LongAudioPipeline:
    """An ASR model with an optional VAD and an optional punctuation model; see the module docstring.

    ``vad`` needs ``sample_rate`` and ``segments(wav) -> [[start_ms, end_ms], ...]``; ``punc`` needs
    ``punctuate(text)`` returning an object with ``text`` and ``punc_ids`` (one id per token of ``text``).
    """

    def __init__(
        self,
        asr: Transcriber,
        vad: Any = None,
        punc: Any = None,
        *,
        batch_size_s: int = 300,
        batch_size_threshold_s: int = 60,
        max_segment_seconds: Optional[float] = None,
    ):
        """``max_segment_seconds``: a longer VAD segment fails the recording (None: no limit).

        Raises:
            ConfigError: ``batch_size_s`` / ``batch_size_threshold_s`` not whole seconds in [1, 100000], or
                ``max_segment_seconds`` not a finite number > 0.
        """
        for name, value in (("batch_size_s", batch_size_s), ("batch_size_threshold_s", batch_size_threshold_s)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BATCH_SIZE:
                raise ConfigError(f"{name} {value!r}: must be an integer number of seconds in [1, {MAX_BATCH_SIZE}]")
        if max_segment_seconds is not None and (
            not isinstance(max_segment_seconds, (int, float))
            or isinstance(max_segment_seconds, bool)
            or not 0 < max_segment_seconds < float("inf")
        ):
            raise ConfigError(f"max_segment_seconds {max_segment_seconds!r}: must be a finite number of seconds > 0")
        if vad is not None and int(vad.sample_rate) != int(asr.sample_rate):
            raise ModelDirError(
                f"the VAD model works at {vad.sample_rate} Hz but the ASR model at {asr.sample_rate} Hz; "
                "use models of the same rate"
            )
        self.asr, self.vad, self.punc = asr, vad, punc
        self.batch_size_s = batch_size_s
        self.batch_size_threshold_s = batch_size_threshold_s
        self.max_segment_seconds = max_segment_seconds
        self.sample_rate = asr.sample_rate
        # wall seconds spent per stage, over all recordings so far
        self.stage_seconds: Dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @property
    def punc_marks(self) -> List[str]:
        """The marks the punctuation model writes (its punctuation list, without ``_`` and ``<unk>``)."""
        return [] if self.punc is None else [m for m in self.punc.punc_list if m not in ("_", "<unk>")]

    def transcribe_waveform(
        self,
        wav: torch.Tensor,
        progress: Optional[Callable[[float], None]] = None,
        hotwords: Optional[Sequence[Sequence[int]]] = None,
    ) -> Dict[str, Any]:
        """Run one recording through the pipeline.

        Args:
            wav: (S,) float32 mono at :attr:`sample_rate`.
            progress: called with the audio seconds covered after each batch, and with the rest at the end.
            hotwords: token ids per hotword biasing every segment (hotword models only; see
                :meth:`~funasr_lite.decode.transcribe.Transcriber.decode_features`); None: no hotwords.
        Returns:
            ``text`` (punctuated), ``raw_text``, ``tokens``, ``token_ids``, ``score``, ``timestamp``
            (``[[start_ms, end_ms], ...]`` per token, in the recording's time), ``sentence_info`` (dicts with
            ``text``, ``start``, ``end``, ``timestamp``) and ``vad_segments`` (``[[start_ms, end_ms], ...]``).
        Raises:
            PipelineError: a segment is too long, or fails to decode even alone.
        """
        if not isinstance(wav, torch.Tensor):
            raise AudioError(
                f"wav must be a 1-D float32 torch.Tensor at {self.sample_rate} Hz, got {type(wav).__name__} "
                "(funasr_lite.data.audio.load_audio reads a file into one)"
            )
        if hotwords is not None:  # a bad list fails the call, not each segment
            hotwords = self.asr.check_hotwords(hotwords)
        num_samples = wav.numel()
        duration_ms = num_samples * 1000 // self.sample_rate
        t0 = time.perf_counter()
        if self.vad is not None:
            segments = _check_segments(self.vad.segments(wav))
            release_free_memory()  # the VAD's chunk features, before the ASR's passes
        else:
            segments = [[0, duration_ms]] if num_samples else []
        self.stage_seconds["vad"] += time.perf_counter() - t0
        pieces = self._decode_segments(wav, segments, progress, hotwords)
        texts = [p["text"] for p in pieces]
        stamps = [shift_timestamps(p["timestamp"], seg[0]) for p, seg in zip(pieces, segments)]
        timestamps = [t for seg in stamps for t in seg]
        raw_text = join_raw_texts(texts)
        result: Dict[str, Any] = {
            "text": raw_text,
            "raw_text": raw_text,
            "tokens": [t for p in pieces for t in p["tokens"]],
            "token_ids": [t for p in pieces for t in p["token_ids"]],
            "score": float(sum(p["score"] for p in pieces)),
            "timestamp": timestamps,
            "sentence_info": [],
            "vad_segments": segments,
        }
        punc_text = join_segment_texts(texts)
        if not raw_text.strip() or not punc_text:
            result["text"] = result["raw_text"] = ""
        elif self.punc is None:
            result["sentence_info"] = segment_sentences(texts, stamps, segments)
        else:
            t0 = time.perf_counter()
            punctuated = self.punc.punctuate(punc_text)
            self.stage_seconds["punc"] += time.perf_counter() - t0
            result["text"] = punctuated.text
            ids = punctuated.punc_ids
            ids = None if ids is None else [int(i) for i in ids]
            if ids is not None and len(ids) != len(timestamps):
                logger.debug("punctuation ids (%d) and token times (%d) do not pair up", len(ids), len(timestamps))
                result["sentence_info"] = segment_sentences(texts, stamps, segments)
            else:
                result["sentence_info"] = split_sentences(ids, timestamps, punc_text)
        if progress is not None:
            progress(max(0.0, num_samples / self.sample_rate - sum(e - s for s, e in segments) / 1000.0))
        return result

    def _decode_segments(
        self,
        wav: torch.Tensor,
        segments: List[List[int]],
        progress: Optional[Callable[[float], None]],
        hotwords: Optional[Sequence[Sequence[int]]] = None,
    ) -> List[Dict[str, Any]]:
        """ASR results of ``segments`` (in their order), decoded in :func:`segment_batches` batches, each in
        forward passes bounded by the ASR's ``batch_size`` and ``batch_seconds``."""
        rate = self.sample_rate
        min_samples = int(rate * MIN_FRAME_MS / 1000.0)
        if self.max_segment_seconds is not None:
            for s, e in segments:
                if (e - s) / 1000.0 > self.max_segment_seconds:
                    raise PipelineError(
                        f"VAD segment [{s}, {e}] ms is {(e - s) / 1000.0:.1f} s long, longer than --max_duration "
                        f"{self.max_segment_seconds:g} s (with a VAD, --max_duration limits one segment)"
                    )
        pieces: List[Optional[Dict[str, Any]]] = [None] * len(segments)
        t0 = time.perf_counter()
        for batch in segment_batches(segments, self.batch_size_s, self.batch_size_threshold_s):
            views = {i: wav[self._samples(segments[i], wav.numel())] for i in batch}
            for i in [i for i in batch if views[i].numel() < min_samples]:  # shorter than one frame: nothing said
                pieces[i] = {"text": "", "tokens": [], "token_ids": [], "score": 0.0, "timestamp": []}
            todo = {i: (segments[i][1] - segments[i][0]) / 1000.0 for i in batch if pieces[i] is None}
            for forward in make_batches(todo, self.asr.options.batch_size, self.asr.options.batch_seconds):
                self._decode_retrying(forward, views, segments, pieces, hotwords)
                release_free_memory()
                if progress is not None:
                    progress(sum(todo[i] for i in forward))
            if progress is not None and len(todo) < len(batch):
                progress(sum(segments[i][1] - segments[i][0] for i in batch if i not in todo) / 1000.0)
        self.stage_seconds["asr"] += time.perf_counter() - t0
        return pieces  # type: ignore[return-value]

    def _samples(self, segment: List[int], num_samples: int) -> slice:
        """The samples of a segment (``ms * rate // 1000``, clipped to the audio); without a VAD, all of them (the
        one segment's end in whole ms would drop the last samples)."""
        if self.vad is None:
            return slice(0, num_samples)
        rate = self.sample_rate
        return slice(segment[0] * rate // 1000, min(segment[1] * rate // 1000, num_samples))

    def _decode_retrying(
        self,
        todo: List[int],
        views: Dict[int, torch.Tensor],
        segments: List[List[int]],
        pieces: List[Optional[Dict[str, Any]]],
        hotwords: Optional[Sequence[Sequence[int]]] = None,
    ) -> None:
        """Decode ``todo`` as one batch; when it fails, each segment alone; a segment failing alone raises."""
        try:
            for i, res in zip(todo, self.asr.decode_waveforms([views[i] for i in todo], hotwords)):
                pieces[i] = res
        except Exception as e:  # as decode_retrying of the plain job: any error of a batch retries it
            why = " ".join(str(e).split()) or type(e).__name__
            if len(todo) == 1:
                s, e_ms = segments[todo[0]]
                raise PipelineError(f"VAD segment [{s}, {e_ms}] ms: decoding failed: {why}") from e
            logger.warning("batch of %d segments failed (%s); decoding them one by one", len(todo), why[:200])
            for i in todo:
                self._decode_retrying([i], views, segments, pieces, hotwords)


def resolve_stage_model(model: str, flag: str) -> str:
    """The local dir of a VAD/punctuation model given as a dir, hub id or alias; a HubError names ``flag``."""
    from funasr_lite.errors import HubError
    from funasr_lite.hub.aliases import resolve_alias
    from funasr_lite.hub.download import resolve_model

    hub_id = resolve_alias(model)
    try:
        return resolve_model(hub_id)
    except HubError as e:
        alias = f" (alias of {hub_id})" if hub_id != model else ""
        why = str(e).split(": ", 1)[-1].replace("--model DIR", f"{flag} DIR")
        raise HubError(f"{flag} {model}{alias}: {why}") from None


def _stage_name(value: Any, name: str) -> Optional[str]:
    """A VAD / punctuation model argument: None for None or ``"none"`` (any case), else a non-blank string."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} {value!r}: must be a model dir, a hub id or an alias (None or 'none': no model)")
    return value


def load_pipeline(
    model: str,
    vad_model: Optional[str] = None,
    punc_model: Optional[str] = None,
    device: Optional[str] = None,
    *,
    checkpoint: Optional[str] = None,
    batch_size_s: int = 300,
    batch_size_threshold_s: int = 60,
    max_segment_seconds: Optional[float] = None,
    asr: Optional[Transcriber] = None,
    layers: Sequence[Any] = (),
    quantize: Optional[str] = None,
) -> LongAudioPipeline:
    """Load the ASR model (a dir or hub id, or the given ``asr``), and the VAD and punctuation models (a dir, a
    hub id or an alias of :data:`funasr_lite.hub.aliases.MODEL_ALIASES`; None or ``"none"``: no such stage).
    ``quantize="int8"``: the ASR model's Linear layers in int8, as ``--quantize int8`` (CPU only; a dir
    with only the saved int8 weights of ``funasr-lite quantize`` loads too).

    Raises:
        ConfigError: ``vad_model`` / ``punc_model`` is not a string or is blank (before any model is loaded).
    """
    from funasr_lite.hub.download import resolve_model
    from funasr_lite.hub.model_dir import detect_model_dir

    vad_model, punc_model = _stage_name(vad_model, "vad_model"), _stage_name(punc_model, "punc_model")
    if asr is None:
        md = detect_model_dir(resolve_model(model), checkpoint=checkpoint, quantized_only_ok=quantize is not None)
        asr = Transcriber(md, device, layers=layers, quantize=quantize)
    vad = punc = None
    if vad_model is not None:
        from funasr_lite.vad import load_vad

        vad = load_vad(resolve_stage_model(vad_model, "--vad_model"), device=str(asr.device))
    if punc_model is not None:
        from funasr_lite.punc import load_punc

        punc = load_punc(resolve_stage_model(punc_model, "--punc_model"), device=str(asr.device))
    return LongAudioPipeline(
        asr,
        vad,
        punc,
        batch_size_s=batch_size_s,
        batch_size_threshold_s=batch_size_threshold_s,
        max_segment_seconds=max_segment_seconds,
    )
