"""FSMN-VAD's post-processing: per-frame speech/silence decisions -> speech segments, FunASR 1.4.16's rules.

Per 10 ms frame ``t`` (silence posterior ``p``, the sum over ``sil_pdf_ids``; energy ``dB``):

* the frame is speech when ``exp(log(1-p)) >= exp(ratio * log(p)) + speech_noise_thres``, its energy is at
  least ``decibel_thres`` and its SNR against the running noise level at least ``snr_thres``; every other
  frame is silence, and a frame that loses the posterior test updates the noise level;
* a window of ``window_size_ms`` smooths the decisions: speech starts when at least
  ``sil_to_speech_time_thres`` ms of the window are speech, and stops when at most ``speech_to_sil_time_thres``;
* a segment starts ``window + lookback_time_start_point`` ms before the window that confirmed it (never before
  the end of the previous segment); it ends after ``end_silence_ms`` of continuous silence, keeping
  ``lookahead_time_end_point`` ms of it, or when it reaches ``max_single_segment_time``, or at the last frame.

``end_silence_ms`` is ``max_end_silence_time - speech_to_sil_time_thres`` unless the caller sets it per chunk
(the dynamic schedule of :mod:`funasr_lite.vad.model`). Segments are ``[start_ms, end_ms]`` with
``end_ms`` one frame past the last frame kept. The rules are FunASR's, including ones that look odd:
a segment closed by the length limit restarts only after the window sees a new silence-to-speech change.
"""

import math
from typing import List, Sequence

from funasr_lite.vad.config import VadModelConf

__all__ = ["SegmentDetector"]

# detector states
_WAITING, _IN_SPEECH, _ENDED = 0, 1, 2
# window transitions
_SIL2SIL, _SIL2SPEECH, _SPEECH2SPEECH, _SPEECH2SIL = 0, 1, 2, 3


class SegmentDetector:
    """Turns per-frame posteriors and energies into segments, chunk by chunk (one input per :meth:`reset`)."""

    def __init__(self, conf: VadModelConf):
        self.conf = conf  # the detector options
        self.frame_ms = conf.frame_in_ms  # ms per frame
        self.win_frames = int(conf.window_size_ms / conf.frame_in_ms)  # smoothing window, frames
        self.start_frames = int(conf.sil_to_speech_time_thres / conf.frame_in_ms)  # speech frames that start
        self.stop_frames = int(conf.speech_to_sil_time_thres / conf.frame_in_ms)  # speech frames that stop
        lookback = int(conf.lookback_time_start_point / conf.frame_in_ms) if conf.do_extend else 0
        self.latency = self.win_frames + lookback  # frames between a segment's start and its confirmation
        self.max_frames = conf.max_single_segment_time / conf.frame_in_ms  # FunASR compares with a float
        self.speech_is_speech = math.fabs(1.0) > conf.fe_prior_thres
        self.reset()

    def reset(self) -> None:
        """Start a new input."""
        c = self.conf
        self.end_silence_ms = c.max_end_silence_time - c.speech_to_sil_time_thres  # silence that ends a segment
        self.speech_noise_thres = c.speech_noise_thres  # posterior margin of a speech frame
        self.state = _WAITING
        self.frames = 0  # frames seen
        self.noise_db = -100.0  # running noise level
        self.buf_start = 0  # first frame not yet consumed (FunASR's data_buf_start_frame)
        self.ends_detected = 0
        self.segments: List[List] = []  # [start_ms, end_ms, has_start, has_end]
        self.sent = 0  # segments already returned
        self._reset_segment()

    def _reset_segment(self) -> None:
        self.silence_run = 0
        self.last_speech = 0
        self.last_silence = -1
        self.seg_start = -1
        self.seg_end = -1
        self.state = _WAITING
        self.win = [0] * self.win_frames
        self.win_sum = 0
        self.win_pos = 0
        self.win_speech = False

    # ---------------------------------------------------------------- frame decisions
    def _is_speech(self, p_sil: float, db: float) -> bool:
        c = self.conf
        snr = db - self.noise_db
        if db < c.decibel_thres:
            return False
        noise = _log(p_sil) * c.speech_2_noise_ratio
        speech = _log(1.0 - p_sil)
        if _exp(speech) >= _exp(noise) + self.speech_noise_thres:
            return snr >= c.snr_thres and db >= c.decibel_thres
        n = c.noise_frame_num_used_for_snr
        self.noise_db = db if self.noise_db < -99.9 else (db + self.noise_db * (n - 1)) / n
        return False

    def _window(self, speech: bool) -> int:
        v = 1 if speech else 0
        self.win_sum += v - self.win[self.win_pos]
        self.win[self.win_pos] = v
        self.win_pos = (self.win_pos + 1) % self.win_frames
        if not self.win_speech and self.win_sum >= self.start_frames:
            self.win_speech = True
            return _SIL2SPEECH
        if self.win_speech and self.win_sum <= self.stop_frames:
            self.win_speech = False
            return _SPEECH2SIL
        return _SPEECH2SPEECH if self.win_speech else _SIL2SIL

    # ---------------------------------------------------------------- segment bookkeeping
    def _consume_to(self, frame: int) -> None:
        self.buf_start = max(self.buf_start, frame)

    def _emit_frame(self, frame: int, first: bool = False, last: bool = False) -> None:
        self._consume_to(frame)
        if not self.segments or first:
            self.segments.append([frame * self.frame_ms, frame * self.frame_ms, False, False])
        seg = self.segments[-1]
        self.buf_start += 1
        seg[1] = (frame + 1) * self.frame_ms
        seg[2] = seg[2] or first
        seg[3] = seg[3] or last

    def _voice(self, frame: int) -> None:
        self.last_speech = frame
        self._emit_frame(frame)

    def _voice_start(self, frame: int, fake: bool = False) -> None:
        if self.seg_start == -1:
            self.seg_start = frame
        if not fake and self.state == _WAITING:
            self._emit_frame(self.seg_start, first=True)

    def _voice_end(self, frame: int, fake: bool, last: bool) -> None:
        for t in range(self.last_speech + 1, frame):
            self._voice(t)
        if self.seg_end == -1:
            self.seg_end = frame
        if not fake:
            self._emit_frame(self.seg_end, last=True)
        self.ends_detected += 1

    def _end_here(self, frame: int) -> None:
        self._voice_end(frame, False, False)
        self.state = _ENDED

    def _step(self, speech: bool, t: int, final: bool) -> None:
        change = self._window(speech and self.speech_is_speech)
        too_long = t - self.seg_start + 1 > self.max_frames
        if change == _SIL2SPEECH:
            self.silence_run = 0
            if self.state == _WAITING:
                start = max(self.buf_start, t - self.latency)
                self._voice_start(start)
                self.state = _IN_SPEECH
                for f in range(start + 1, t + 1):
                    self._voice(f)
            elif self.state == _IN_SPEECH:
                for f in range(self.last_speech + 1, t):
                    self._voice(f)
                self._continue(t, final, too_long)
        elif change in (_SPEECH2SIL, _SPEECH2SPEECH):
            self.silence_run = 0
            if self.state == _IN_SPEECH:
                self._continue(t, final, too_long)
        else:  # silence continues
            self.silence_run += 1
            if self.state == _WAITING:
                single = self.conf.detect_mode == 0
                if (single and self.silence_run * self.frame_ms > self.conf.max_start_silence_time) or (
                    final and self.ends_detected == 0
                ):
                    for f in range(self.last_silence + 1, t):
                        self._silence(f)
                    self._voice_start(0, fake=True)
                    self._voice_end(0, True, False)
                    self.state = _ENDED
                elif t >= self.latency:
                    self._silence(t - self.latency)
            elif self.state == _IN_SPEECH:
                lookahead = int(self.conf.lookahead_time_end_point / self.frame_ms)
                if self.silence_run * self.frame_ms >= self.end_silence_ms:
                    back = int(self.end_silence_ms / self.frame_ms)
                    if self.conf.do_extend:
                        back = max(0, back - lookahead - 1)
                    self._end_here(t - back)
                elif too_long:
                    self._end_here(t)
                elif self.conf.do_extend and not final:
                    if self.silence_run <= lookahead:
                        self._voice(t)
                elif final:
                    self._end_here_last(t)
        if self.state == _ENDED and self.conf.detect_mode == 1:
            self._reset_segment()

    def _continue(self, t: int, final: bool, too_long: bool) -> None:
        """In speech at frame t: end it when too long, else keep the frame, or end it on the last frame."""
        if too_long:
            self._end_here(t)
        elif not final:
            self._voice(t)
        else:
            self._end_here_last(t)

    def _end_here_last(self, t: int) -> None:
        self._voice_end(t, False, True)
        self.state = _ENDED

    def _silence(self, frame: int) -> None:
        self.last_silence = frame
        if self.state == _WAITING:
            self._consume_to(frame)

    # ---------------------------------------------------------------- public
    @property
    def in_speech(self) -> bool:
        """Whether a segment is open (started, not yet ended)."""
        return self.state == _IN_SPEECH

    def detect(self, p_sil: Sequence[float], db: Sequence[float], final: bool) -> List[List[int]]:
        """Run the next frames (their silence posteriors and energies, in order); ``final``: the input's last
        frames.  Returns the segments completed by these frames (all remaining ones when ``final``)."""
        first = self.frames
        self.frames += len(p_sil)
        if self.state != _ENDED:
            last = len(p_sil) - 1
            for i, (p, d) in enumerate(zip(p_sil, db)):
                self._step(self._is_speech(p, d), first + i, final and i == last)
        out = []
        for seg in self.segments[self.sent :]:
            if not final and not (seg[2] and seg[3]):
                continue
            out.append([seg[0], seg[1]])
            self.sent += 1
        return out


def _log(x: float) -> float:
    # A posterior of exactly 0 or 1 makes FunASR raise "math domain error"; -inf is its limit.
    return math.log(x) if x > 0.0 else -math.inf


def _exp(x: float) -> float:
    # A negative speech_2_noise_ratio can push the silence term past exp's range, where FunASR raises
    # OverflowError; +inf is its limit (the frame is silence).
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
