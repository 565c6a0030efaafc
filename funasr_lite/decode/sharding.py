"""A decoding job sharded over processes, GPUs and nodes with torchrun.

``torchrun --nproc_per_node N infer.py ...`` (or ``infer.py --nj N``, which starts the same thing through
torchrun's own launcher, :func:`~funasr_lite.decode.launch.launch_local`) runs the job once per rank:

1. Rank 0 takes the output dir's lock (:func:`~funasr_lite.utils.lock.dir_lock`; the other ranks never
   touch it) and tells the others over a ``gloo`` process group whether the job goes on.
2. Every rank reads the data dir and the audio headers and computes the same split of ``wav.scp``
   (:func:`assign_shards`: balanced by audio duration, no communication needed).
3. Rank ``r`` of ``W`` decodes its batches into its part dir ``1best_recog/.shards/<W>-<r>/`` (a
   :class:`~funasr_lite.decode.outputs.ResultWriter` dir: ``.part`` files per batch, final files renamed
   into place, plus ``batches.jsonl``, one JSON line per decoded batch), then writes ``manifest.json``
   last: the part's fingerprint (world size, rank, its batches, its keys with their audio files' size and
   mtime, the model files, the merged config and the device type) and the SHA-256 of ``batches.jsonl``.
   A part whose manifest matches is complete and valid, and a rerun reuses it; from the log of an
   interrupted part with the same fingerprint a rerun keeps the batches decoded and decodes the others.
4. Rank 0 waits for every rank (a ``gloo`` gather; a rank that died ends the wait) and merges the parts
   into the usual ``1best_recog/`` files, written exactly as a single-process run writes them. Each key
   of a missing or invalid part is listed in ``failed`` naming its shard, and the job fails with
   :class:`ShardsMissingError`; rerunning the same command decodes only the missing shards. After a
   complete merge ``.shards/`` is removed; parts of another world size are never reused.

When a rank dies, torchrun stops the others with SIGTERM; rank 0 then still merges what is complete
(within torchrun's 30 s grace period) before it exits. Rank 0 carries the job's exit status: the other
ranks exit 0 once rank 0 knows how their shard went.
"""

import contextlib
import datetime
import hashlib
import heapq
import json
import logging
import os
import shutil
import signal
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from funasr_lite.data.datadir import DataDir
from funasr_lite.decode.infer import (
    HotwordIds,
    InferResult,
    decode_all,
    hotword_plan,
    job_batches,
    output_lock,
    prepare_job,
    write_outputs,
)
from funasr_lite.decode.launch import TorchrunEnv, rank_log_prefix, torchrun_env
from funasr_lite.decode.options import LONG_AUDIO_ONE_PROCESS, InferOptions
from funasr_lite.decode.outputs import FIELDS, OutputError, ResultWriter, format_results
from funasr_lite.decode.transcribe import Transcriber
from funasr_lite.errors import ConfigError, FunasrLiteError
from funasr_lite.utils.device import resolve_device
from funasr_lite.utils.fileio import atomic_write_json, atomic_write_text

__all__ = [
    "ShardsMissingError",
    "assign_shards",
    "job_batches",
    "part_dir",
    "shard_fingerprint",
    "decode_shard",
    "merge_shards",
    "run_sharded",
]

logger = logging.getLogger(__name__)

SHARDS_DIR = ".shards"
MANIFEST = "manifest.json"
LOG = "batches.jsonl"
# bumped when the part format changes: older parts are then stale
PART_FORMAT = 1
# how long rank 0 waits in the final gather for the slowest rank (a rank that dies ends the wait at once)
WAIT_TIMEOUT = datetime.timedelta(days=2)


class ShardsMissingError(FunasrLiteError):
    """Some shards of a sharded job did not finish; their keys are listed in ``failed`` and a rerun decodes them."""


class _Terminated(BaseException):
    """SIGTERM reached rank 0 (torchrun stops the ranks when one dies): merge what is complete, then exit."""


def assign_shards(
    batches: Sequence[Sequence[str]], durations: Mapping[str, float], world: int
) -> List[List[List[str]]]:
    """Split ``batches`` (keys) over ``world`` shards balanced by audio duration: the batch with the most audio
    first (ties: the earlier batch), each onto the shard with the least audio so far (ties: the lowest rank).

    Whole batches move, so each utterance is decoded in the same padded batch as in one process and the
    outputs are byte-identical (the scores' last digits depend on the padding). Deterministic, so every rank
    computes the same split without communication. Returns each shard's batches, in their original order.
    """
    totals = [sum(durations[k] for k in batch) for batch in batches]
    shards: List[List[int]] = [[] for _ in range(world)]
    heap: List[Tuple[float, int]] = [(0.0, r) for r in range(world)]
    for i in sorted(range(len(batches)), key=lambda i: (-totals[i], i)):
        load, rank = heapq.heappop(heap)
        shards[rank].append(i)
        heapq.heappush(heap, (load + totals[i], rank))
    return [[list(batches[i]) for i in sorted(indices)] for indices in shards]


def _keys(batches: Sequence[Sequence[str]]) -> List[str]:
    return [k for batch in batches for k in batch]


def part_dir(output_dir: str, world: int, rank: int) -> str:
    """``output_dir/1best_recog/.shards/<world>-<rank>``: where rank ``rank`` of ``world`` writes its part."""
    return os.path.join(output_dir, "1best_recog", SHARDS_DIR, f"{world}-{rank}")


def _stat(path: Optional[str]) -> Optional[Tuple[str, int, int]]:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (os.path.abspath(path), -1, -1)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def shard_fingerprint(
    asr: Transcriber,
    data: DataDir,
    durations: Mapping[str, float],
    batches: Sequence[Sequence[str]],
    world: int,
    rank: int,
    hotwords_of: Optional[Mapping[str, HotwordIds]] = None,
) -> str:
    """SHA-256 naming what a part's results depend on: world size and rank, the shard's batches, its keys with
    their audio files (path, size, mtime), durations and hotword ids, the model files, the merged config and
    the device type."""
    md = asr.model_dir
    what = {
        "format": PART_FORMAT,
        "world": world,
        "rank": rank,
        "model": [_stat(p) for p in (md.root, md.config, md.checkpoint, md.quantized, md.cmvn, md.tokens, md.seg_dict)],
        "config": repr(asr.config),
        "decoding": repr(asr.options),
        "device": torch.device(asr.device).type,
        "batches": [list(b) for b in batches],
        "utts": [(k, data.wavs[k], _stat(data.wavs[k]), repr(durations[k])) for k in _keys(batches)],
        "hotwords": [(hotwords_of or {}).get(k) for k in _keys(batches)],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=repr).encode("utf-8")).hexdigest()


class _PartWriter(ResultWriter):
    """The writer of a part dir: a :class:`ResultWriter` that also appends each batch as one JSON line to
    ``batches.jsonl`` (flushed to disk), the log a rerun resumes from; its first line holds the fingerprint."""

    def __init__(self, directory: str, log_text: str):
        super().__init__(directory)
        path = os.path.join(directory, LOG)
        try:
            atomic_write_text(path, log_text)
            self._log = open(path, "a", encoding="utf-8")
        except OSError as e:
            self.close()
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from e

    def add(self, results: Mapping[str, Dict], failed: Mapping[str, str]) -> None:
        super().add(results, failed)
        try:
            self._log.write(json.dumps({"results": dict(results), "failed": dict(failed)}) + "\n")
            self._log.flush()
            os.fsync(self._log.fileno())
        except OSError as e:
            raise OutputError(f"cannot write {os.path.join(self.result_dir, LOG)}: {e.strerror or e}") from e

    def close(self) -> None:
        super().close()
        log = getattr(self, "_log", None)
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()


def _read_log(directory: str, fingerprint: str, batches: Sequence[Sequence[str]]) -> Dict[int, Tuple[Dict, str]]:
    """The batches of the shard logged in ``directory/batches.jsonl`` under ``fingerprint``: batch index ->
    (``{"results", "failed"}``, its line). A line cut short (the rank died while writing it) ends the log."""
    index = {frozenset(batch): i for i, batch in enumerate(batches)}
    done: Dict[int, Tuple[Dict, str]] = {}
    try:
        with open(os.path.join(directory, LOG), encoding="utf-8") as f:
            if f.readline() != json.dumps({"fingerprint": fingerprint}) + "\n":
                return {}
            for line in f:
                entry = json.loads(line) if line.endswith("\n") else None
                i = index.get(frozenset([*entry["results"], *entry["failed"]])) if entry else None
                if i is None or i in done:
                    break
                done[i] = (entry, line)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass  # what was read so far stands
    return done


def _read_part(
    directory: str, fingerprint: str, batches: Sequence[Sequence[str]]
) -> Tuple[Optional[Dict[str, Dict]], str]:
    """The complete, valid part in ``directory`` as ``{"results": {key: result}, "failed": {key: reason}}``,
    else ``(None, why not)``."""
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or manifest.get("fingerprint") != fingerprint:
            return None, "its part is stale (another model, data, world size or decoding setup)"
        with open(os.path.join(directory, LOG), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None, "its part is incomplete or missing (no manifest)"
    except (OSError, ValueError) as e:
        return None, f"its part cannot be read: {e}"
    done = _read_log(directory, fingerprint, batches)
    if digest != manifest.get("log_sha256") or len(done) != len(batches):
        return None, f"{os.path.join(directory, LOG)} does not match its manifest"
    part: Dict[str, Dict] = {"results": {}, "failed": {}}
    for entry, _ in done.values():
        part["results"].update(entry["results"])
        part["failed"].update(entry["failed"])
    return part, ""


def decode_shard(
    opts: InferOptions,
    data: DataDir,
    asr: Transcriber,
    durations: Mapping[str, float],
    batches: Sequence[Sequence[str]],
    world: int,
    rank: int,
    hotwords_of: Optional[Mapping[str, HotwordIds]] = None,
) -> float:
    """Decode ``batches`` (this rank's shard) into its part dir; return the seconds of audio decoded now.

    A complete valid part is reused as it is; the batches an interrupted run of the same shard logged are
    kept, and only the others are decoded.
    """
    directory = part_dir(opts.output_dir, world, rank)
    fingerprint = shard_fingerprint(asr, data, durations, batches, world, rank, hotwords_of)
    name = f"shard {world}-{rank}"
    if _read_part(directory, fingerprint, batches)[0] is not None:
        logger.info("%s: reusing the complete part %s (%d utterances)", name, directory, len(_keys(batches)))
        return 0.0
    done = _read_log(directory, fingerprint, batches)
    todo = [list(b) for i, b in enumerate(batches) if i not in done]
    shard = {k: durations[k] for k in _keys(todo)}
    logger.info(
        "%s: decoding %d utterances, %.1f s of audio%s",
        name,
        len(shard),
        sum(shard.values()),
        f" (the other {len(done)} of its {len(batches)} batches were decoded by an earlier run)" if done else "",
    )
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(os.path.join(directory, MANIFEST))  # the part is invalid from here until it is complete
    header = json.dumps({"fingerprint": fingerprint}) + "\n"
    writer = _PartWriter(directory, header + "".join(line for i, (_, line) in sorted(done.items())))
    try:
        results: Dict[str, Dict] = {}
        failed: Dict[str, str] = {}
        for entry, _ in done.values():
            results.update(entry["results"])
            failed.update(entry["failed"])
        new, audio_seconds, wall = decode_all(asr, data, shard, failed, writer, todo, hotwords_of)
        results.update(new)
        files = {field: format_results(field, results) for field in FIELDS}
        files["failed"] = "".join(f"{k} {failed[k]}\n" for k in sorted(failed))
        writer.finish(files)
    except BaseException:
        writer.abort()
        raise
    with open(os.path.join(directory, LOG), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    manifest = {"world": world, "rank": rank, "batches": len(batches), "wall_seconds": wall}
    atomic_write_json(os.path.join(directory, MANIFEST), {**manifest, "fingerprint": fingerprint, "log_sha256": digest})
    return audio_seconds


def merge_shards(
    opts: InferOptions,
    data: DataDir,
    asr: Transcriber,
    failed: Mapping[str, str],
    durations: Mapping[str, float],
    world: int,
    reasons: Mapping[int, str],
    wall: float,
    hotwords_of: Optional[Mapping[str, HotwordIds]] = None,
) -> InferResult:
    """Merge the ``world`` parts into ``output_dir/1best_recog`` (rank 0, holding the lock).

    ``failed`` are the keys that failed before decoding (data dir, audio headers), ``durations`` the others;
    ``reasons`` say why a rank reported no part (rank -> message), for the error message.

    Raises:
        ShardsMissingError: a part is missing or invalid; the outputs are written all the same, with each of
            its keys in ``failed``.
    """
    results: Dict[str, Dict] = {}
    all_failed = dict(failed)
    missed: Dict[str, str] = {}  # the keys of shards that did not finish
    missing: List[str] = []
    audio_seconds = 0.0
    for rank, batches in enumerate(assign_shards(job_batches(asr, durations, hotwords_of), durations, world)):
        directory = part_dir(opts.output_dir, world, rank)
        keys = _keys(batches)
        fingerprint = shard_fingerprint(asr, data, durations, batches, world, rank, hotwords_of)
        part, why = _read_part(directory, fingerprint, batches)
        if part is None:
            why = reasons.get(rank) or why
            missing.append(f"shard {world}-{rank} (rank {rank} of {world}, {len(keys)} utterances): {why}")
            for key in keys:
                missed[key] = f"not decoded: shard {world}-{rank} (rank {rank}) did not finish: {why}"
            continue
        results.update(part["results"])
        all_failed.update(part["failed"])
        audio_seconds += sum(durations[k] for k in part["results"])
    for key in all_failed:
        logger.warning("failed: %s %s", key, all_failed[key])
    for line in missing:
        logger.error("not decoded: %s", line)
    writer = ResultWriter(os.path.join(opts.output_dir, "1best_recog"))
    try:
        result = write_outputs(opts, data, asr, writer, results, {**all_failed, **missed}, audio_seconds, wall)
    except BaseException:
        writer.abort()
        raise
    _remove_stale_parts(opts.output_dir, keep=world if missing else None)
    if missing:
        raise ShardsMissingError(
            f"{len(missing)} of {world} shards did not finish: {'; '.join(missing)}. Their utterances are listed "
            f"in {os.path.join(result.result_dir, 'failed')}; rerun the same command (same number of processes) "
            f"to decode only them"
        )
    return result


def _remove_stale_parts(output_dir: str, keep: Optional[int]) -> None:
    """Remove ``.shards/`` entries, but the parts of world size ``keep`` (None: remove all)."""
    root = os.path.join(output_dir, "1best_recog", SHARDS_DIR)
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        if keep is not None and name.split("-")[0] == str(keep):
            continue
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    if keep is None:
        with contextlib.suppress(OSError):
            os.rmdir(root)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def run_sharded(
    opts: InferOptions,
    layers: Sequence[Tuple[str, Mapping[str, Any]]] = (),
    asr: Optional[Transcriber] = None,
    setup: Optional[Callable[[], None]] = None,
) -> InferResult:
    """Run this process's part of a job under torchrun (see the module docstring).

    ``setup`` runs on rank 0 under the lock before any rank reads the model (e.g. completing a finetune
    output dir). Rank 0 returns the merged job's result; another rank returns its shard's, with
    ``worker_shard`` set, and exits 0 once rank 0 has its status.

    Raises:
        FunasrLiteError: on rank 0, the job cannot run, or (:class:`ShardsMissingError`) a shard did not finish.
    """
    import torch.distributed as dist

    if opts.long_audio:
        raise ConfigError(LONG_AUDIO_ONE_PROCESS)
    env = torchrun_env()
    if opts.nj not in (1, env.world):
        raise ConfigError(f"--nj {opts.nj} under torchrun with WORLD_SIZE={env.world}: give one or the other")
    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method="env://", timeout=WAIT_TIMEOUT)
    device = resolve_device(opts.device, env.local_rank) if asr is None else asr.device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    with contextlib.ExitStack() as stack:
        stack.enter_context(rank_log_prefix(env))
        # 1. rank 0 takes the lock (and runs setup); every rank learns whether the job goes on
        status: List[Optional[str]] = [None]
        if env.rank == 0:
            try:
                stack.enter_context(output_lock(opts.output_dir))
                if setup is not None:
                    setup()
            except BaseException as e:
                dist.broadcast_object_list([_one_line(e)], src=0)
                raise
        dist.broadcast_object_list(status, src=0)
        if status[0] is not None:
            logger.error("rank 0 could not start the job: %s", status[0])
            return _worker_result(env, 0, 0.0, 0.0)
        return _run_rank(opts, layers, asr, device, env, stack)


def _worker_result(env: TorchrunEnv, num_utts: int, audio_seconds: float, wall: float) -> InferResult:
    return InferResult(
        num_utts=num_utts,
        failed={},
        audio_seconds=audio_seconds,
        wall_seconds=wall,
        result_dir="",
        worker_shard=_name(env),
    )


def _name(env: TorchrunEnv) -> str:
    return f"{env.world}-{env.rank}"


def _run_rank(
    opts: InferOptions,
    layers: Sequence[Tuple[str, Mapping[str, Any]]],
    asr: Optional[Transcriber],
    device: torch.device,
    env: TorchrunEnv,
    stack: contextlib.ExitStack,
) -> InferResult:
    import torch.distributed as dist

    start = time.perf_counter()
    error: Optional[str] = None
    job = None
    hotwords_of: Optional[Dict[str, HotwordIds]] = None
    keys: List[str] = []
    audio_seconds = 0.0
    if env.rank == 0:
        stack.enter_context(_sigterm_raises())
    try:
        try:
            prepared = prepare_job(opts, layers, asr, device)
            hotwords_of = hotword_plan(prepared[3], opts, prepared[0], prepared[2])
            job = prepared  # only a job whose hotwords are known too is decoded
            start = time.perf_counter()  # the job's wall time: from decoding to the end of the merge
        except (FunasrLiteError, OSError, ValueError) as e:
            if env.rank == 0:  # the job cannot run; let the others through the gather first
                dist.gather_object(None, [None] * env.world, dst=0)
                raise
            error = f"it could not start: {_one_line(e)}"
            logger.error("shard %s: %s", _name(env), error)
        if job is not None:
            data, _, durations, model = job
            batches = assign_shards(job_batches(model, durations, hotwords_of), durations, env.world)[env.rank]
            keys = _keys(batches)
            try:
                audio_seconds = decode_shard(opts, data, model, durations, batches, env.world, env.rank, hotwords_of)
            except (FunasrLiteError, OSError, RuntimeError) as e:
                error = f"it failed: {_one_line(e)}"
                logger.error("shard %s: %s", _name(env), error)
        # 2. rank 0 waits for every rank's status
        statuses: List[Optional[str]] = [None] * env.world if env.rank == 0 else None
        dist.gather_object(error, statuses, dst=0)
    except _Terminated:
        statuses = [None] * env.world
        statuses[0] = error or "rank 0 was stopped (SIGTERM) before its part was complete"
        logger.error("SIGTERM (a rank died, or the job was stopped): merging the complete parts")
    except RuntimeError as e:  # the gather failed: a rank died
        if env.rank != 0 or job is None:
            raise
        statuses = [None] * env.world
        logger.error("waiting for the other ranks failed (%s): merging the complete parts", _one_line(e))
    if env.rank != 0:
        dist.destroy_process_group()
        return _worker_result(env, len(keys), audio_seconds, time.perf_counter() - start)
    if job is None:
        raise FunasrLiteError("the job was stopped (SIGTERM) before rank 0 had read the data dir; nothing merged")
    # 3. rank 0 merges; a SIGTERM from here on is ignored until the merge is written
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    data, failed, durations, model = job
    reasons = {r: s for r, s in enumerate(statuses) if s}
    try:
        wall = time.perf_counter() - start
        return merge_shards(opts, data, model, failed, durations, env.world, reasons, wall, hotwords_of)
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into :class:`_Terminated` for the block (once); restore the old handler after it."""

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
