"""Decode a Kaldi data dir with a Paraformer-family model dir: the job behind the recipes' infer.py.

Outputs, under ``output_dir/1best_recog/`` (one ``key value`` line each, sorted by key,
each file replaced atomically; the output dir itself is never deleted):

* ``text``: the post-processed sentence; ``token``: space-separated tokens;
  ``score``: the hypothesis score (sum of max log-probs for greedy decoding);
  ``timestamp``: CIF token times ``[[start_ms,end_ms],...]`` (BiCifParaformer: word times);
* ``failed``: ``key reason`` for each utterance that could not be decoded;
* hotwords (models with hotword support): ``opts.hotword`` biases every utterance; ``data_dir/hotword``
  (``key word word ...``) adds an utterance's own; utterances with different hotword lists are decoded in
  separate batches;
* with ``data_dir/text``: ``text.cer`` (FunASR's format; failed utterances count
  as deletions) and ``errs-<data set>-<decoding>.txt``, an aligned REF/HYP report.

Every key of ``wav.scp`` ends up in exactly one of ``text`` or ``failed``.
Exit status of :func:`main`-style callers: 0 all decoded, 2 some utterances
failed, 1 the job could not run (bad model dir, data dir or arguments).
"""

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from funasr_lite.data.audio import audio_duration, load_audio
from funasr_lite.data.datadir import DataDir, load_data_dir
from funasr_lite.decode.cer import format_error_report, format_text_cer, score_corpus
from funasr_lite.decode.hotwords import load_utterance_hotwords, tokenize_hotwords
from funasr_lite.decode.launch import torchrun_env
from funasr_lite.decode.options import AfterFinetuneOptions, InferOptions
from funasr_lite.decode.outputs import FIELDS, OutputError, ResultWriter, check_writable, format_results
from funasr_lite.decode.quantize import check_quantize
from funasr_lite.decode.transcribe import Transcriber, decode_retrying, make_batches
from funasr_lite.errors import FunasrLiteError, ModelDirError
from funasr_lite.hub.download import resolve_model
from funasr_lite.hub.model_dir import detect_model_dir
from funasr_lite.utils.device import resolve_device, resolve_dtype
from funasr_lite.utils.fileio import atomic_copy
from funasr_lite.utils.lock import LOCK_NAME, dir_lock

logger = logging.getLogger(__name__)


@dataclass
class InferResult:
    """What a job did: counts, timing, and where the outputs are."""

    # number of utterances in wav.scp
    num_utts: int
    # key -> reason, for utterances that could not be decoded
    failed: Dict[str, str]
    # seconds of audio decoded
    audio_seconds: float
    # wall seconds of the decode loop
    wall_seconds: float
    # output_dir/1best_recog
    result_dir: str
    # the text.cer summary line, when data_dir/text exists
    cer_summary: Optional[str] = None
    # "<world>-<rank>" on a torchrun rank other than 0: it decoded only that shard (rank 0 reports the job)
    worker_shard: Optional[str] = None

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _where(data: DataDir, key: str) -> str:
    """``<data_dir>/wav.scp:<line>`` of an utterance, for messages."""
    return f"{os.path.join(data.path, 'wav.scp')}:{data.wav_lines.get(key, '?')}"


def run_inference(
    opts: InferOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]] = (), asr: Optional[Transcriber] = None
) -> InferResult:
    """Decode ``opts.data_dir`` and write the outputs (see the module docstring).

    ``layers`` are config layers above the model dir's config.yaml and decoding.yaml (the recipe defaults and
    flags, e.g. ``[("command line", {"decoding": {"beam_size": 5}})]``); ``asr`` is an already loaded model.
    The job holds the lock of ``opts.output_dir`` (:func:`~funasr_lite.utils.lock.dir_lock`) throughout.
    Under torchrun (``WORLD_SIZE`` > 1) each process decodes one shard and rank 0 merges them
    (:mod:`funasr_lite.decode.sharding`).

    Raises:
        FunasrLiteError: the job cannot run at all (data dir, model dir, output dir, device).
    """
    if torchrun_env().world > 1:
        from funasr_lite.decode.sharding import run_sharded  # it builds on this module

        return run_sharded(opts, layers, asr=asr)
    device = resolve_device(opts.device) if asr is None else asr.device  # a bad --device fails before any work
    if asr is None:
        resolve_dtype(opts.dtype, device)  # so does --dtype fp16 on a CPU
    check_quantize(opts.quantize if asr is None else None, device)  # --quantize int8 on a GPU, too
    with output_lock(opts.output_dir):
        return _run_locked(opts, layers, asr, device)


@contextlib.contextmanager
def output_lock(output_dir: str) -> Iterator[None]:
    """Hold the job's lock on ``output_dir``; a dir this job created is removed again when the job fails and
    left nothing in it but the lock file."""
    created = not os.path.isdir(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise OutputError(f"output dir {output_dir} is not writable: cannot create it: {e.strerror or e}") from e
    try:
        with dir_lock(output_dir, "decoding job"):
            yield
    except BaseException:
        if created and os.listdir(output_dir) == [LOCK_NAME]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(output_dir, LOCK_NAME))
                os.rmdir(output_dir)
        raise


def _run_locked(
    opts: InferOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]], asr: Optional[Transcriber], device
) -> InferResult:
    if opts.long_audio:  # VAD / punctuation: the long-audio job
        from funasr_lite.pipeline.job import run_long_audio

        torch.set_num_threads(max(1, opts.ncpu))
        data, failed = prepare_data(opts)
        return run_long_audio(opts, data, failed, asr or _load(opts, layers, device))
    data, failed, durations, asr = prepare_job(opts, layers, asr, device)
    # 5. decode, longest batches first; each batch is appended to the .part files, which survive an interruption
    writer = ResultWriter(os.path.join(opts.output_dir, "1best_recog"))
    try:
        writer.add({}, failed)
        hotwords_of = hotword_plan(asr, opts, data, durations)
        results, audio_seconds, wall = decode_all(asr, data, durations, failed, writer, hotwords_of=hotwords_of)
        for key in failed:
            logger.warning("failed: %s %s", key, failed[key])
        return write_outputs(opts, data, asr, writer, results, failed, audio_seconds, wall)
    except BaseException:
        writer.abort()
        raise


def _load(opts: InferOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]], device) -> Transcriber:
    return Transcriber(
        detect_model_dir(resolve_model(opts.model), checkpoint=opts.checkpoint, quantized_only_ok=bool(opts.quantize)),
        str(device),
        layers=layers,
        dtype=opts.dtype,
        quantize=opts.quantize,
    )


def prepare_data(opts: InferOptions) -> Tuple[DataDir, Dict[str, str]]:
    """The data dir of a job and the utterances that fail before decoding (key -> reason); the output dir
    is checked to take the outputs. Shared by this job and the long-audio job."""
    # 1. data dir: every problem is collected; per-utterance ones fail only that utterance
    data = load_data_dir(opts.data_dir, mode="infer")
    for problem in data.warnings:
        logger.warning("%s", problem)
    failing = data.failed_keys(include_text=False)
    failed: Dict[str, str] = {
        k: "; ".join(_one_line(f"{p.file}:{p.line}: {p.message}") for p in probs) for k, probs in failing.items()
    }
    # errors that fail no utterance (a bad text line, a line without a readable key) are still reported
    for problem in data.errors:
        if not any(problem is p for probs in failing.values() for p in probs):
            logger.warning("%s", problem)
    # 2. the output dir must take the outputs (under 1 kB per utterance, twice: .part and final) before any work
    check_writable(opts.output_dir, max(1 << 16, 2048 * len(data.wavs)))
    return data, failed


def prepare_job(
    opts: InferOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]], asr: Optional[Transcriber], device
) -> Tuple[DataDir, Dict[str, str], Dict[str, float], Transcriber]:
    """Everything before decoding: the data dir, the output dir check, the model and the audio durations.

    Returns ``(data dir, failed, durations, model)``: ``failed`` maps each key that cannot be decoded to its
    reason, ``durations`` each other key of ``wav.scp`` to its length in seconds (from the audio header).
    """
    torch.set_num_threads(max(1, opts.ncpu))
    data, failed = prepare_data(opts)
    # 3. model
    if asr is None:
        asr = _load(opts, layers, device)
    # 4. durations from headers; unreadable or too long audio fails here, before decoding
    durations: Dict[str, float] = {}
    for key in data.good_keys(include_text=False):
        path = data.wavs[key]
        try:
            dur = audio_duration(path)
        except FunasrLiteError as e:
            failed[key] = f"{_where(data, key)}: {_one_line(e)}"
            continue
        if dur > opts.max_duration:
            failed[key] = (
                f"{_where(data, key)}: {path}: {dur:.1f} s is longer than --max_duration "
                f"{opts.max_duration:g} s; pass --vad_model fsmn-vad to cut it into segments, or raise --max_duration"
            )
            continue
        durations[key] = dur
    return data, failed, durations, asr


def write_outputs(
    opts: InferOptions,
    data: DataDir,
    asr: Transcriber,
    writer: ResultWriter,
    results: Mapping[str, Dict],
    failed: Dict[str, str],
    audio_seconds: float,
    wall: float,
    *,
    fields: Sequence[str] = FIELDS,
    score_form: Optional[Callable[[str], str]] = None,
    score_note: str = "",
) -> InferResult:
    """Write the final files of ``results`` (key -> result dict) and ``failed`` (key -> reason) through
    ``writer``, and the CER against ``data_dir/text`` (wav.scp keys only), renamed into place together.

    ``fields``: the per-key files; ``score_form``: applied to REF and HYP before scoring (e.g. removing
    punctuation); ``score_note``: said in text.cer's first line and the summary line when it is given."""
    files = {name: format_results(name, results) for name in fields}
    files["failed"] = "".join(f"{k} {failed[k]}\n" for k in sorted(failed))
    result = InferResult(
        num_utts=len(data.wavs),
        failed=failed,
        audio_seconds=audio_seconds,
        wall_seconds=wall,
        result_dir=writer.result_dir,
    )
    if data.texts is not None:
        form = score_form or (lambda text: text)
        refs = {k: form(v) for k, v in data.texts.items() if k in data.wavs}
        report = score_corpus(refs, {k: form(r["text"]) for k, r in results.items()})
        files["text.cer"] = (f"# {score_note}\n" if score_note else "") + format_text_cer(report)
        set_name = os.path.basename(os.path.normpath(opts.data_dir)) or "data"
        files[f"errs-{set_name}-{asr.options.tag()}.txt"] = format_error_report(report)
        result.cer_summary = report.summary_line() + (f" ({score_note})" if score_note else "")
    writer.finish(files)
    return result


HotwordIds = Optional[Tuple[Tuple[int, ...], ...]]


def hotword_plan(
    asr: Transcriber, opts: InferOptions, data: DataDir, durations: Mapping[str, float]
) -> Dict[str, HotwordIds]:
    """The hotword token ids of each key of ``durations`` (None: no hotwords): ``opts.hotword`` for every key,
    plus the key's own words from ``data_dir/hotword``."""
    common = asr.parse_hotword(opts.hotword)
    own = load_utterance_hotwords(data.path, list(data.wavs))
    if own is not None and not asr.supports_hotwords:
        if opts.hotword is None:
            logger.warning("%s/hotword is ignored: the model (%s) takes no hotwords", data.path, asr.config.model)
        own = None
    plan: Dict[str, HotwordIds] = {}
    for key in durations:
        ids = list(common.ids) if common is not None else None
        words = (own or {}).get(key)
        if words:
            extra = tokenize_hotwords(words, asr.tokenizer, f"{os.path.join(data.path, 'hotword')} ({key})")
            ids = (ids or []) + [h for h in extra.ids if h not in (ids or [])]
        plan[key] = tuple(ids) if ids is not None else None
    if len(set(plan.values())) > 1:
        logger.info("%d different hotword lists: decoded in separate batches", len(set(plan.values())))
    return plan


def job_batches(
    asr: Transcriber, durations: Mapping[str, float], hotwords_of: Optional[Mapping[str, HotwordIds]] = None
) -> List[List[str]]:
    """The batches a job decodes: :func:`~funasr_lite.decode.transcribe.make_batches` of each group of keys
    that share their hotwords (``hotwords_of``: key -> hotword ids; None: no hotwords)."""
    groups: Dict[HotwordIds, Dict[str, float]] = {}
    for key, dur in durations.items():
        groups.setdefault(hotwords_of.get(key) if hotwords_of else None, {})[key] = dur
    return [
        keys
        for members in groups.values()
        for keys in make_batches(members, asr.options.batch_size, asr.options.batch_seconds)
    ]


def decode_all(
    asr: Transcriber,
    data: DataDir,
    durations: Dict[str, float],
    failed: Dict[str, str],
    writer: ResultWriter,
    batches: Optional[List[List[str]]] = None,
    hotwords_of: Optional[Mapping[str, HotwordIds]] = None,
) -> Tuple[Dict[str, Dict], float, float]:
    """Decode the utterances of ``durations`` in ``batches`` (default: :func:`job_batches` of them), each batch
    with the hotwords of its keys (``hotwords_of``: key -> hotword ids, shared within a batch; None: none);
    ``(results, audio seconds, wall seconds)``."""
    results: Dict[str, Dict] = {}
    audio_seconds, start = 0.0, time.perf_counter()
    if batches is None:
        batches = job_batches(asr, durations, hotwords_of)
    with tqdm(total=len(durations), unit="utt", desc="decoding", dynamic_ncols=True) as bar:
        for keys in batches:
            hotwords = hotwords_of.get(keys[0]) if hotwords_of and keys else None
            wavs: Dict[str, torch.Tensor] = {}
            batch_results: Dict[str, Dict] = {}
            batch_failed: Dict[str, str] = {}
            for key in keys:
                try:
                    wavs[key] = load_audio(data.wavs[key], asr.sample_rate)
                except FunasrLiteError as e:
                    batch_failed[key] = f"{_where(data, key)}: {_one_line(e)}"
            good = [k for k in keys if k in wavs]
            if good:
                decode_retrying(
                    asr,
                    good,
                    wavs,
                    batch_results,
                    batch_failed,
                    lambda k: f"{_where(data, k)}: {data.wavs[k]}",
                    [list(h) for h in hotwords] if hotwords is not None else None,
                )
                audio_seconds += sum(wavs[k].numel() for k in batch_results) / asr.sample_rate
            writer.add(batch_results, batch_failed)
            results.update(batch_results)
            failed.update(batch_failed)
            bar.update(len(keys))
            elapsed = time.perf_counter() - start
            bar.set_postfix(rtf=f"{elapsed / audio_seconds:.4f}" if audio_seconds else "-")
    return results, audio_seconds, time.perf_counter() - start


def summary_lines(result: InferResult) -> List[str]:
    """The lines the recipe prints at the end of a job."""
    lines = [f"results: {result.result_dir}"]
    if result.cer_summary:
        lines.append(result.cer_summary)
    lines.append(
        f"decoded {result.num_utts - len(result.failed)}/{result.num_utts} utterances "
        f"({len(result.failed)} failed), {result.audio_seconds:.1f} s of audio in "
        f"{result.wall_seconds:.1f} s, RTF {result.rtf:.4f}"
    )
    if result.failed:
        lines.append(f"failed utterances are listed in {os.path.join(result.result_dir, 'failed')}")
    return lines


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_finetuned_dir(
    output_dir: str, decoding_model_name: str, init_model: Optional[str], required_files: Sequence[str]
) -> str:
    """Make a finetune output dir decodable; return the path of the checkpoint to decode with.

    Files of ``required_files`` (and config.yaml, tokens, am.mvn) that the dir lacks
    are copied in from the init model, which is resolved only when something is missing.

    Raises:
        ModelDirError: the dir or the checkpoint does not exist (the message lists
            the checkpoints that do), or a required file is in neither dir.
    """
    if not os.path.isdir(output_dir):
        raise ModelDirError(f"finetune output dir {output_dir} does not exist")
    ckpt = os.path.join(output_dir, decoding_model_name)
    if not os.path.isfile(ckpt):
        available = sorted(
            f for f in os.listdir(output_dir) if f.endswith((".pb", ".pt", ".pth")) and f != "checkpoint.pb"
        )
        raise ModelDirError(
            f"checkpoint {ckpt} does not exist; available in {output_dir}: "
            f"{', '.join(available) or 'none (did finetuning finish an epoch?)'}"
        )
    has_tokens = any(os.path.isfile(os.path.join(output_dir, t)) for t in ("tokens.json", "tokens.txt"))
    wanted = list(dict.fromkeys([*required_files, "config.yaml", "am.mvn"]))
    missing = [name for name in wanted if not os.path.isfile(os.path.join(output_dir, name))]
    if not has_tokens:
        missing.append("tokens.json")
    essential = [n for n in missing if n in ("config.yaml", "am.mvn")]
    if missing:
        source = None
        try:
            source = resolve_model(init_model) if init_model else None
        except FunasrLiteError as e:
            if essential:
                raise
            logger.warning("init model not available (%s); going on without %s", e, ", ".join(missing))
        if source is None and essential:
            raise ModelDirError(f"{output_dir} lacks {', '.join(essential)} and no --modelscope_model_name was given")
        for name in missing if source else []:
            candidates = [name] if name != "tokens.json" else ["tokens.json", "tokens.txt"]
            found = [c for c in candidates if os.path.isfile(os.path.join(source, c))]
            if found:
                atomic_copy(os.path.join(source, found[0]), os.path.join(output_dir, found[0]))
                logger.info("copied %s from the init model %s", found[0], source)
            elif name in essential:
                raise ModelDirError(f"{name} is missing from {output_dir} and from the init model {source}")
            else:
                logger.info("%s is in neither %s nor the init model; not needed to decode", name, output_dir)
    logger.info(
        "decoding with %s%s (sha256 %s)", ckpt, _chosen_note(output_dir, decoding_model_name), file_sha256(ckpt)
    )
    return ckpt


def _chosen_note(output_dir: str, name: str) -> str:
    """`` = valid.acc.ave.pb, the checkpoint finetune chose`` for model.pt when configuration.json records it."""
    if name != "model.pt":
        return ""
    try:
        with open(os.path.join(output_dir, "configuration.json"), encoding="utf-8") as f:
            chosen = (json.load(f).get("funasr_lite") or {}).get("model.pt")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" (= {chosen}, the checkpoint finetune chose)" if isinstance(chosen, str) else ""


def run_after_finetune(
    opts: InferOptions, after: AfterFinetuneOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]] = ()
) -> InferResult:
    """Decode with checkpoint ``after.decoding_model_name`` of the finetune dir ``opts.model`` into
    ``<finetune dir>/decode_results`` (``opts.output_dir`` and ``opts.checkpoint`` are replaced)."""
    if not os.path.isdir(opts.model):
        raise ModelDirError(f"finetune output dir {opts.model} does not exist")
    opts = replace(opts, checkpoint=after.decoding_model_name, output_dir=os.path.join(opts.model, "decode_results"))

    def setup() -> None:
        prepare_finetuned_dir(opts.model, after.decoding_model_name, after.modelscope_model_name, after.required_files)

    if torchrun_env().world > 1:  # rank 0 runs setup() under the lock before any rank loads the model
        from funasr_lite.decode.sharding import run_sharded

        return run_sharded(opts, layers, setup=setup)
    device = resolve_device(opts.device)
    resolve_dtype(opts.dtype, device)
    check_quantize(opts.quantize, device)
    with output_lock(opts.output_dir):  # one job at a time fills in the dir's missing files and decodes
        setup()
        return _run_locked(opts, layers, None, device)
