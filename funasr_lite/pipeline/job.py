"""The data-dir job of ``infer.py --vad_model ... --punc_model ...``: every recording of ``wav.scp`` through
:class:`~funasr_lite.pipeline.long_audio.LongAudioPipeline`.

Outputs, under ``output_dir/1best_recog/`` (one ``key value`` line each, sorted by key, replaced atomically):

* ``text``: the punctuated text; ``raw_text``: the text before punctuation; ``token``, ``score``;
* ``timestamp``: ``[[start_ms,end_ms],...]`` per token, in the recording's time;
* ``sentences``: ``key start_ms end_ms text``, one line per sentence (none for an empty recording);
* ``vad``: ``key [[start_ms,end_ms],...]``, the segments decoded (the whole file without a VAD);
* ``subtitles/<key>.srt``: SubRip subtitles, one cue per sentence, written as each recording finishes;
* ``failed``; with ``data_dir/text``: ``text.cer`` and ``errs-*.txt``, scored with the punctuation model's marks
  removed from hypothesis and reference (so punctuation never changes the CER), as the file's first line says.

Every key of ``wav.scp`` ends in exactly one of ``text`` or ``failed``; a recording with no speech is a result
with an empty text. Recordings are read whole, once; features exist only for the batch being decoded.
"""

import logging
import os
import time
from typing import Dict, Mapping, Optional

from tqdm import tqdm

from funasr_lite.data.audio import audio_duration, load_audio
from funasr_lite.data.datadir import DataDir
from funasr_lite.decode.infer import HotwordIds, InferResult, _one_line, _where, hotword_plan, write_outputs
from funasr_lite.decode.options import InferOptions
from funasr_lite.decode.outputs import LONG_AUDIO_FIELDS, ResultWriter, write_subtitles
from funasr_lite.decode.transcribe import Transcriber
from funasr_lite.errors import FunasrLiteError
from funasr_lite.pipeline.long_audio import STAGES, LongAudioPipeline, load_pipeline
from funasr_lite.pipeline.sentences import strip_punctuation
from funasr_lite.pipeline.subtitles import format_srt, srt_file_name

__all__ = ["run_long_audio", "UNPUNCTUATED_NOTE"]

logger = logging.getLogger(__name__)

# the first line of text.cer, and the tail of the printed summary, when punctuation was removed before scoring
UNPUNCTUATED_NOTE = "scored without punctuation: the punctuation model's marks were removed from hyp and ref"


def run_long_audio(
    opts: InferOptions,
    data: DataDir,
    failed: Dict[str, str],
    asr: Transcriber,
    pipe: Optional[LongAudioPipeline] = None,
) -> InferResult:
    """Decode ``data`` with ``asr`` and the VAD / punctuation models of ``opts`` (see the module docstring).

    ``failed`` holds the keys that failed before decoding (key -> reason); it is completed in place.
    ``pipe``: an already loaded pipeline (its models replace ``asr`` and those ``opts`` names).
    """
    pipe = pipe or load_pipeline(
        opts.model,
        opts.vad_model,
        opts.punc_model,
        asr=asr,
        batch_size_s=opts.batch_size_s,
        batch_size_threshold_s=opts.batch_size_threshold_s,
        max_segment_seconds=opts.max_duration if opts.vad_model is not None else None,
    )
    # durations from headers: unreadable audio fails here; without a VAD --max_duration limits the file
    durations: Dict[str, float] = {}
    for key in data.good_keys(include_text=False):
        try:
            durations[key] = audio_duration(data.wavs[key])
        except FunasrLiteError as e:
            failed[key] = f"{_where(data, key)}: {_one_line(e)}"
            continue
        if opts.vad_model is None and durations[key] > opts.max_duration:
            failed[key] = (
                f"{_where(data, key)}: {data.wavs[key]}: {durations.pop(key):.1f} s is longer than --max_duration "
                f"{opts.max_duration:g} s; pass --vad_model fsmn-vad to cut it into segments, or raise --max_duration"
            )
    result_dir = os.path.join(opts.output_dir, "1best_recog")
    writer = ResultWriter(result_dir, fields=LONG_AUDIO_FIELDS, subtitles=True)
    try:
        writer.add({}, failed)
        hotwords_of = hotword_plan(pipe.asr, opts, data, durations)
        results, audio_seconds, wall = _decode_all(pipe, data, durations, failed, writer, hotwords_of)
        for key in failed:
            logger.warning("failed: %s %s", key, failed[key])
        logger.info(
            "stage wall seconds: %s",
            ", ".join(f"{s} {pipe.stage_seconds[s]:.1f}" for s in STAGES if s != "punc" or pipe.punc),
        )
        marks = pipe.punc_marks
        result = write_outputs(
            opts,
            data,
            asr,
            writer,
            results,
            failed,
            audio_seconds,
            wall,
            fields=LONG_AUDIO_FIELDS,
            score_form=(lambda text: strip_punctuation(text, marks)) if marks else None,
            score_note=f"{UNPUNCTUATED_NOTE} ({' '.join(marks)})" if marks else "",
        )
    except BaseException:
        writer.abort()
        raise
    return result


def _decode_all(
    pipe: LongAudioPipeline,
    data: DataDir,
    durations: Dict[str, float],
    failed: Dict[str, str],
    writer: ResultWriter,
    hotwords_of: Mapping[str, HotwordIds],
):
    """Decode the recordings of ``durations`` one at a time, longest first, each with its hotword ids
    (``hotwords_of``); ``(results, audio s, wall s)``.

    The progress bar counts audio seconds and shows the running RTF."""
    results: Dict[str, Dict] = {}
    audio_seconds, start = 0.0, time.perf_counter()
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}{postfix}]"
    with tqdm(total=sum(durations.values()), desc="decoding", bar_format=bar_format, dynamic_ncols=True) as bar:

        def progress(seconds: float) -> None:
            bar.update(seconds)
            done = bar.n
            bar.set_postfix(rtf=f"{(time.perf_counter() - start) / done:.4f}" if done else "-", refresh=False)

        for key in sorted(durations, key=lambda k: (-durations[k], k)):
            shown = bar.n
            try:
                wav = load_audio(data.wavs[key], pipe.sample_rate)
                ids = hotwords_of.get(key)
                res = pipe.transcribe_waveform(wav, progress, [list(h) for h in ids] if ids is not None else None)
                del wav
            except Exception as e:  # any error of one recording fails it; the job goes on (as the plain job's)
                logger.debug("recording %s failed", key, exc_info=True)
                why = _one_line(e) or type(e).__name__  # named the file unless the error already does
                failed[key] = f"{_where(data, key)}: {why if data.wavs[key] in why else data.wavs[key] + ': ' + why}"
                writer.add({}, {key: failed[key]})
                bar.update(max(0.0, shown + durations[key] - bar.n))  # the bar still covers the file
                continue
            write_subtitles(writer.result_dir, srt_file_name(key), format_srt(res["sentence_info"]))
            results[key] = res
            audio_seconds += durations[key]
            writer.add({key: res}, {})
    return results, audio_seconds, time.perf_counter() - start
