#!/usr/bin/env python3
"""Generate the bundled Mandarin "numbers" demo corpus (train/dev/test) with espeak-ng.

Usage:
    # the bundled corpus (what egs_modelscope/.../*-numbers-demo/data holds)
    python tools/make_demo_corpus.py \\
        --out egs_modelscope/asr/paraformer/speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo/data
    # a small one elsewhere, or only the sentences (no audio, no espeak-ng needed)
    python tools/make_demo_corpus.py --out /tmp/demo --num_train 50 --num_dev 5 --num_test 5 --seed 1
    python tools/make_demo_corpus.py --out /tmp/demo --text_only

Sentences come from a seeded grammar of one narrow, realistic domain: phone numbers
read digit by digit (一 often read 幺), dates (二零二四年三月五日, 三月五号), times
(下午三点四十五分, 八点半), amounts (九十九元五角, 一千二百三十块), weekdays, codes and
counts, inside short carrier sentences (我的电话是…, 请在…之前付款, 会议改到…).
Transcripts hold Chinese characters only: no Arabic digits, no punctuation.

Every sentence is unique across the three splits, and the character set of dev
and of test is a subset of train's, so every test token is in a token list built
from the training text.  Each utterance gets a voice (espeak-ng's pinyin Mandarin
voice with several variants), speed, pitch and level; about a quarter get light
white noise (20-35 dB SNR).  Leading/trailing silence is trimmed to a short
margin and audio is stored as 16 kHz 16-bit mono FLAC.

Output, per split ``OUT/{train,dev,test}/``: ``wav/<key>.flac``; ``wav.scp`` with
paths RELATIVE to the data dir (``wav/<key>.flac``, so the corpus works wherever
the repo is cloned); ``text`` with space-separated characters (AISHELL style);
``utt2synth`` with ``key voice speed pitch gain snr_db|clean`` for analysis.
Synthesis runs in ``--nj`` processes; every random choice is made up front from
``--seed``, so the result (text and audio bytes) does not depend on ``--nj``.
"""

import argparse
import datetime
import os
import random
import re
import sys
from dataclasses import dataclass, field
from multiprocessing import Pool
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import soundfile as sf

import synth_data  # a sibling in tools/
from funasr_lite.utils.fileio import atomic_open, atomic_write_text

SPLITS = ("train", "dev", "test")
# espeak-ng's plain "cmn" voice reads most characters as pinyin spelled with English
# letters and tone digits ("三" -> "san one"); the pinyin voice speaks them in Mandarin.
VOICE = "cmn-latn-pinyin"
DEFAULT_VOICES = [
    VOICE,
    VOICE + "+f2",
    VOICE + "+m3",
    VOICE + "+f4",
    VOICE + "+m1",
    VOICE + "+f3",
    VOICE + "+m6",
    VOICE + "+f5",
]

# ---------------------------------------------------------------------------------------
# Reading numbers
# ---------------------------------------------------------------------------------------

DIGITS = "零一二三四五六七八九"


def read_digits(digits: str, yao: bool = False) -> str:
    """Digit-by-digit reading of an ASCII digit string; ``yao``: 1 is read 幺."""
    return "".join("幺" if (d == "1" and yao) else DIGITS[int(d)] for d in digits)


def _below_10000(n: int, lead: bool, liang: bool) -> str:
    """Reading of 1 <= n < 10000; ``lead``: first group (10-19 read 十X, not 一十X)."""
    parts: List[str] = []
    started = zero_pending = False
    for d, unit in zip((n // 1000, n // 100 % 10, n // 10 % 10, n % 10), ("千", "百", "十", "")):
        if d == 0:
            zero_pending = started
            continue
        if zero_pending:
            parts.append("零")
            zero_pending = False
        if unit == "十" and d == 1 and not started and lead:
            parts.append("十")
        elif d == 2 and not started and liang and unit in ("千", "百"):
            parts.append("两" + unit)
        else:
            parts.append(DIGITS[d] + unit)
        started = True
    return "".join(parts)


def read_int(n: int, liang: bool = False) -> str:
    """Chinese reading of 0 <= n < 10**8 (十五, 一百零五, 一万零一十); ``liang``: a leading
    2 before 百/千/万 is read 两."""
    if not 0 <= n < 10**8:
        raise ValueError(f"read_int: {n} is out of range 0..99999999")
    if n == 0:
        return "零"
    if n < 10000:
        return _below_10000(n, True, liang)
    high, low = divmod(n, 10000)
    out = ("两" if high == 2 and liang else _below_10000(high, True, liang)) + "万"
    if low:
        out += ("零" if low < 1000 else "") + _below_10000(low, False, False)
    return out


# ---------------------------------------------------------------------------------------
# Slots of the grammar: each takes the RNG and returns a phrase
# ---------------------------------------------------------------------------------------

Rng = random.Random


def phone(rng: Rng) -> str:
    """A mobile, landline or service number, digit by digit."""
    yao = rng.random() < 0.75
    kind = rng.random()
    if kind < 0.6:
        num = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
    elif kind < 0.9:
        area = rng.choice(["010", "021", "020", "022", "023", "025", "027", "028", "029", "0571", "0755", "0512"])
        local = rng.choice("2345678") + "".join(rng.choice("0123456789") for _ in range(rng.choice([6, 7])))
        num = area + local if rng.random() < 0.6 else local
    else:
        num = rng.choice(["110", "120", "119", "122", "114", "12345", "10086", "10010", "95588", "95555", "4008"]) + (
            "".join(rng.choice("0123456789") for _ in range(6)) if rng.random() < 0.3 else ""
        )
    return read_digits(num, yao)


def code(rng: Rng, lo: int = 4, hi: int = 8) -> str:
    """A verification/order/parcel code read digit by digit."""
    n = rng.randint(lo, hi)
    return read_digits("".join(rng.choice("0123456789") for _ in range(n)), rng.random() < 0.6)


def room(rng: Rng) -> str:
    """A room number such as 三零二 or 幺幺零八."""
    floor = rng.randint(1, 28)
    return read_digits(f"{floor}{rng.randint(1, 30):02d}", rng.random() < 0.7)


def year(rng: Rng) -> str:
    return read_digits(str(rng.randint(1985, 2030))) + "年"


def month_day(rng: Rng) -> Tuple[str, str]:
    """(month phrase, day phrase) such as (三月, 五日) or (十二月, 二十一号)."""
    m = rng.randint(1, 12)
    dmax = 29 if m == 2 else (30 if m in (4, 6, 9, 11) else 31)
    return read_int(m) + "月", read_int(rng.randint(1, dmax)) + rng.choice("日号")


def date(rng: Rng) -> str:
    """A calendar date with or without the year."""
    m, d = month_day(rng)
    r = rng.random()
    if r < 0.35:
        return year(rng) + m + d
    if r < 0.85:
        return rng.choice(["", "", "今年", "明年", "去年"]) + m + d
    return rng.choice(["这个月", "下个月", "本月"]) + read_int(rng.randint(1, 31)) + "号"


def weekday(rng: Rng) -> str:
    """星期三, 周五, 下周一, 礼拜天 ..."""
    pre = rng.choice(["", "", "", "下", "这", "上"])
    r = rng.random()
    if r < 0.5:
        day = "星期" + rng.choice(list("一二三四五六") + ["天", "日"])
    elif r < 0.85:
        day = "周" + rng.choice("一二三四五六日")
        pre = pre.replace("这", "本")
    else:
        day = "礼拜" + rng.choice(list("一二三四五六") + ["天"])
    return pre + day


WEEKDAYS = "一二三四五六日"


def dated_weekday(rng: Rng) -> str:
    """A true calendar statement: 二零二四年三月五日是星期二."""
    day = datetime.date(rng.randint(1990, 2030), 1, 1) + datetime.timedelta(days=rng.randint(0, 364))
    wd = WEEKDAYS[day.weekday()]
    name = rng.choice(["星期", "周"]) + wd if wd != "日" else rng.choice(["星期天", "星期日", "周日"])
    return (
        read_digits(str(day.year))
        + "年"
        + read_int(day.month)
        + "月"
        + read_int(day.day)
        + rng.choice("日号")
        + "是"
        + name
    )


PERIODS = {
    "凌晨": (1, 5),
    "早上": (6, 9),
    "上午": (8, 11),
    "中午": (11, 13),
    "下午": (1, 6),
    "傍晚": (5, 7),
    "晚上": (6, 11),
}


def clock_time(rng: Rng) -> str:
    """下午三点四十五分, 八点半, 十四点三十分, 两点一刻 ..."""
    if rng.random() < 0.15:  # 24-hour style
        h = rng.randint(0, 23)
        m = rng.choice([0, rng.randint(1, 59), 30, 15, 45])
        return read_int(h) + "点" + (read_int(m) + "分" if m >= 10 else ("零" + read_int(m) + "分" if m else "整"))
    period = rng.choice(["", ""] + list(PERIODS))
    lo, hi = PERIODS.get(period, (1, 12))
    h = rng.randint(lo, hi)
    h = h - 12 if h > 12 else h
    hour = "两" if h == 2 else read_int(h)
    r = rng.random()
    if r < 0.15:
        minute = ""
    elif r < 0.25:
        minute = "整"
    elif r < 0.4:
        minute = "半"
    elif r < 0.47:
        minute = rng.choice(["一刻", "三刻"])
    else:
        m = rng.randint(1, 59)
        minute = ("零" if m < 10 else "") + read_int(m)
        if m < 10 or rng.random() < 0.6:
            minute += "分"
    return period + hour + "点" + minute


def money(rng: Rng) -> str:
    """九十九元五角, 一千二百三十块, 三块五, 两百块钱, 八毛钱 ..."""
    r = rng.random()
    if r < 0.2:
        yuan = rng.randint(1, 9)
    elif r < 0.55:
        yuan = rng.randint(10, 99)
    elif r < 0.8:
        yuan = rng.randint(100, 999)
    elif r < 0.95:
        yuan = rng.randint(1000, 9999)
    else:
        yuan = rng.randint(10000, 500000)
    yuan = yuan if rng.random() < 0.7 else max(1, round(yuan, -len(str(yuan)) + 1))
    liang = rng.random() < 0.7
    y = "两" if yuan == 2 and (liang or rng.random() < 0.5) else read_int(yuan, liang)
    jiao, fen = rng.randint(1, 9), rng.randint(1, 9)
    if rng.random() < 0.5:  # formal
        return rng.choice(
            [
                y + "元",
                y + "元",
                y + "元" + read_int(jiao) + "角",
                y + "元" + read_int(jiao) + "角" + read_int(fen) + "分",
                y + "元整",
            ]
        )
    return rng.choice(
        [y + "块", y + "块钱", y + "块" + read_int(jiao), y + "块" + read_int(jiao) + "毛", read_int(jiao) + "毛钱"]
    )


def qty(rng: Rng, lo: int, hi: int) -> str:
    """A count in lo..hi (small ones likelier) as spoken before a measure word: 两, 三, 十五 ..."""
    n = rng.randint(lo, hi) if rng.random() < 0.5 else rng.randint(lo, min(hi, 10))
    return "两" if n == 2 else read_int(n)


def when(rng: Rng) -> str:
    """A day reference for carriers: 明天, 下周三, 三月五号 ..."""
    r = rng.random()
    if r < 0.45:
        return rng.choice(["今天", "明天", "后天", "明天", "大后天"])
    if r < 0.75:
        return weekday(rng)
    return date(rng)


# Carrier sentences by topic, with {slot} or {slot:lo-hi} fields filled from SLOTS.
TOPICS: List[Tuple[float, List[str]]] = [
    (
        0.18,
        [
            "我的电话是{phone}",
            "我的手机号是{phone}",
            "我的手机号码是{phone}",
            "请拨打{phone}",
            "请打{phone}联系我",
            "您可以打{phone}",
            "他的号码是{phone}",
            "联系电话{phone}",
            "有事请拨{phone}",
            "客服电话是{phone}",
            "我的号码换成了{phone}",
            "麻烦记一下{phone}",
            "请回电{phone}",
            "刚才{phone}给你打电话了",
            "电话号码是{phone}",
        ],
    ),
    (
        0.13,
        [
            "请在{date}之前付款",
            "今天是{date}",
            "我们{date}出发",
            "会议改到{date}",
            "合同{date}到期",
            "截止日期是{date}",
            "我的生日是{birthday}",
            "他{date}回来",
            "报名{date}开始",
            "票是{date}的",
            "房租{date}交",
            "活动定在{date}",
            "{dated_weekday}",
            "请于{date}前缴费",
        ],
    ),
    (
        0.15,
        [
            "明天{time}出发",
            "会议改到{time}",
            "现在是{time}",
            "火车{time}到站",
            "航班{time}起飞",
            "我们{time}见面",
            "请{time}之前到",
            "闹钟定在{time}",
            "电影{time}开始",
            "商店{time}关门",
            "我每天{time}起床",
            "飞机{time}降落",
            "孩子{time}放学",
            "现在时间{time}",
        ],
    ),
    (
        0.12,
        [
            "会议改到{weekday}{time}",
            "{when}{time}出发",
            "{weekday}{time}开会",
            "我们{weekday}见",
            "{weekday}交报告",
            "{when}{time}在门口见",
            "请{when}{time}之前付款",
            "预约时间是{when}{time}",
            "快递{when}送到",
            "{when}休息",
        ],
    ),
    (
        0.22,
        [
            "一共{money}",
            "总共是{money}",
            "这件衣服{money}",
            "一共消费{money}",
            "订单金额是{money}",
            "余额还有{money}",
            "请支付{money}",
            "找您{money}",
            "这本书{money}",
            "打车花了{money}",
            "本月电费{money}",
            "午饭花了{money}",
            "每个月房租{money}",
            "您需要付{money}",
            "退款{money}已到账",
            "门票{money}一张",
            "一斤苹果{money}",
            "工资是{money}",
        ],
    ),
    (
        0.10,
        [
            "验证码是{code:4-6}",
            "快递单号是{code:8-12}",
            "房间号是{room}",
            "我住在{room}房间",
            "您的取件码是{code:4-6}",
            "手机尾号{code:4-4}",
            "订单号是{code:8-10}",
            "邮编是{code:6-6}",
            "座位是{int:1-40}排{int:1-30}号",
            "请到{room}会议室",
            "车牌尾号是{code:1-1}",
        ],
    ),
    (
        0.10,
        [
            "我要{qty:1-60}张票",
            "订{qty:1-12}间房",
            "我们一共{qty:1-60}个人",
            "住{qty:1-10}晚",
            "大概需要{int:2-90}分钟",
            "还要等{qty:1-12}个小时",
            "今天气温{int:0-39}度",
            "打{int:5-9}折",
            "打{digits:55-95}折",
            "优惠百分之{pct}",
            "第{int:1-30}号窗口",
            "请{int:1-200}号到",
        ],
    ),
]

SLOTS: Dict[str, Callable[..., str]] = {
    "phone": phone,
    "date": date,
    "birthday": lambda r: "".join(month_day(r)),
    "dated_weekday": dated_weekday,
    "time": clock_time,
    "weekday": weekday,
    "when": when,
    "money": money,
    "room": room,
    "code": lambda r, lo, hi: code(r, lo, hi),
    "int": lambda r, lo, hi: read_int(r.randint(lo, hi)),
    "qty": qty,
    "digits": lambda r, lo, hi: read_digits(str(r.choice(range(lo, hi + 1, 10)))),
    "pct": lambda r: read_int(r.choice([5, 10, 15, 20, 25, 30, 40, 50])),
}
SLOT_RE = re.compile(r"\{(\w+)(?::(\d+)-(\d+))?\}")


def fill(template: str, rng: Rng) -> str:
    """Fill the fields of ``template`` left to right."""

    def one(m: "re.Match[str]") -> str:
        args = () if m.group(2) is None else (int(m.group(2)), int(m.group(3)))
        return SLOTS[m.group(1)](rng, *args)

    return SLOT_RE.sub(one, template)


def is_cjk(text: str) -> bool:
    return bool(text) and all("\u4e00" <= ch <= "\u9fff" for ch in text)


def make_sentence(rng: Rng) -> str:
    """One sentence of the grammar: CJK characters only."""
    group = rng.choices([t for _, t in TOPICS], weights=[w for w, _ in TOPICS])[0]
    text = fill(rng.choice(group), rng)
    if not is_cjk(text):
        raise ValueError(f"grammar produced a non-CJK sentence: {text!r}")
    return text


def draw_splits(num: Dict[str, int], seed: int, max_tries: int = 200) -> Dict[str, List[str]]:
    """Draw unique sentences per split: train first, then test, then dev.

    No sentence is in two splits, and every dev/test character occurs in train.
    Raises ValueError when the grammar cannot supply enough (raise ``max_tries``/train size).
    """
    rng = random.Random(seed)
    seen: Set[str] = set()
    out: Dict[str, List[str]] = {s: [] for s in SPLITS}
    charset: Set[str] = set()
    for split in ("train", "test", "dev"):
        want, tries = num.get(split, 0), 0
        while len(out[split]) < want:
            tries += 1
            if tries > max_tries * max(want, 1):
                raise ValueError(
                    f"could only draw {len(out[split])} of {want} new {split} sentences "
                    f"(train has {len(out['train'])}); use a larger train split"
                )
            s = make_sentence(rng)
            if s in seen or (split != "train" and not set(s) <= charset):
                continue
            seen.add(s)
            out[split].append(s)
        if split == "train":
            charset = set("".join(out["train"]))
    return out


# ---------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------


@dataclass
class CorpusOptions:
    # utterances per split (0 skips the split)
    num_train: int = 500
    num_dev: int = 60
    num_test: int = 60
    # seed of every random choice (sentences, voices, noise)
    seed: int = 0
    # espeak-ng voices (language+variant), drawn per utterance
    voices: List[str] = field(default_factory=lambda: list(DEFAULT_VOICES))
    # speaking rates in words per minute, drawn per utterance
    speeds: List[int] = field(default_factory=lambda: [160, 175, 190, 205, 220])
    # espeak-ng pitch 0..99, drawn per utterance
    pitches: List[int] = field(default_factory=lambda: [30, 40, 50, 60, 70])
    # range of the peak level after scaling (full scale = 1)
    peak: Tuple[float, float] = (0.15, 0.6)
    # fraction of utterances that get white noise
    noise_prob: float = 0.25
    # SNR range in dB for the noise
    snr_db: Tuple[float, float] = (20.0, 35.0)
    # silence kept before/after speech when trimming, seconds
    margin_s: float = 0.1
    # frames quieter than this (dB relative to the loudest 10 ms frame) count as silence
    trim_db: float = -40.0
    # output sample rate (Hz)
    sample_rate: int = 16000
    # synthesis processes
    nj: int = 2

    def __post_init__(self) -> None:
        if min(self.num_train, self.num_dev, self.num_test) < 0 or self.num_train == 0:
            raise ValueError("num_train must be > 0 and num_dev/num_test >= 0")
        if not (self.voices and self.speeds and self.pitches):
            raise ValueError("voices, speeds and pitches must not be empty")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        if self.nj < 1:
            raise ValueError(f"nj must be >= 1, got {self.nj}")


@dataclass
class UttJob:
    key: str  # utterance id
    text: str  # sentence, no spaces
    path: str  # output FLAC path
    voice: str  # espeak-ng voice
    speed: int  # words per minute
    pitch: int  # 0..99
    peak: float  # target peak level
    snr_db: Optional[float]  # None: clean
    noise_seed: int  # seed of the noise generator
    opts: CorpusOptions  # trimming/sample-rate options


def trim_silence(audio: np.ndarray, sr: int, trim_db: float = -40.0, margin_s: float = 0.1) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``trim_db`` (10 ms frames, relative to the
    loudest frame), keeping ``margin_s`` seconds of context. Audio (S,) -> (S',)."""
    hop = max(1, sr // 100)
    nfr = len(audio) // hop
    if nfr == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: nfr * hop].reshape(nfr, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > trim_db)[0]
    margin = int(round(margin_s * sr))
    start = max(0, loud[0] * hop - margin)
    end = min(len(audio), (loud[-1] + 1) * hop + margin)
    return audio[start:end]


def render(job: UttJob) -> Tuple[str, int]:
    """Synthesize, trim, level, add noise and write one FLAC; returns (key, samples)."""
    o = job.opts
    audio = synth_data.synthesize(
        job.text, voice=job.voice, speed=job.speed, pitch=job.pitch, sample_rate=o.sample_rate
    )
    audio = trim_silence(audio, o.sample_rate, o.trim_db, o.margin_s)
    audio = audio * np.float32(job.peak / max(float(np.abs(audio).max()), 1e-6))
    if job.snr_db is not None:
        audio = synth_data.add_noise(audio, job.snr_db, np.random.default_rng(job.noise_seed))
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    with atomic_open(job.path, "wb") as f:
        sf.write(f, pcm, o.sample_rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return job.key, len(pcm)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def plan(sentences: Dict[str, List[str]], out_dir: str, opts: CorpusOptions) -> Dict[str, List[UttJob]]:
    """Draw every utterance's voice/speed/pitch/level/noise from the seed, in split order."""
    rng = random.Random(opts.seed * 1000003 + 17)
    jobs: Dict[str, List[UttJob]] = {}
    for split in SPLITS:
        jobs[split] = []
        for i, text in enumerate(sentences.get(split, [])):
            key = f"{split}_{i + 1:04d}"
            voice, speed, pitch = rng.choice(opts.voices), rng.choice(opts.speeds), rng.choice(opts.pitches)
            peak = round(rng.uniform(*opts.peak), 3)
            snr = round(rng.uniform(*opts.snr_db), 1) if rng.random() < opts.noise_prob else None
            jobs[split].append(
                UttJob(
                    key,
                    text,
                    os.path.join(out_dir, split, "wav", key + ".flac"),
                    voice,
                    speed,
                    pitch,
                    peak,
                    snr,
                    rng.randrange(2**31),
                    opts,
                )
            )
    return jobs


def write_split(split_dir: str, jobs: List[UttJob], nj: int) -> float:
    """Render ``jobs`` into ``split_dir`` and write wav.scp/text/utt2synth; returns seconds of audio."""
    os.makedirs(os.path.join(split_dir, "wav"), exist_ok=True)
    if nj > 1:
        with Pool(nj, initializer=_init_worker) as pool:
            lengths = dict(pool.map(render, jobs, chunksize=4))
    else:
        lengths = dict(render(j) for j in jobs)
    atomic_write_text(os.path.join(split_dir, "wav.scp"), "".join(f"{j.key} wav/{j.key}.flac\n" for j in jobs))
    atomic_write_text(os.path.join(split_dir, "text"), "".join(f"{j.key} {synth_data.spaced(j.text)}\n" for j in jobs))
    atomic_write_text(
        os.path.join(split_dir, "utt2synth"),
        "".join(
            f"{j.key} {j.voice} {j.speed} {j.pitch} {j.peak} {'clean' if j.snr_db is None else j.snr_db}\n"
            for j in jobs
        ),
    )
    return sum(lengths.values()) / jobs[0].opts.sample_rate


def make_corpus(out_dir: str, opts: Optional[CorpusOptions] = None, text_only: bool = False) -> Dict[str, dict]:
    """Write ``out_dir/{train,dev,test}``; returns per split ``{"utts", "minutes", "chars"}``.

    A split dir is cleared of stale ``wav/*.flac`` files before writing. ``text_only``
    writes only ``text`` (no espeak-ng needed).
    """
    opts = opts or CorpusOptions()
    if not text_only and not synth_data.espeak_available():
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install -y espeak-ng)")
    num = {"train": opts.num_train, "dev": opts.num_dev, "test": opts.num_test}
    sentences = draw_splits(num, opts.seed)
    jobs = plan(sentences, out_dir, opts)
    summary: Dict[str, dict] = {}
    for split in SPLITS:
        if not jobs[split]:
            continue
        split_dir = os.path.join(out_dir, split)
        wav_dir = os.path.join(split_dir, "wav")
        if os.path.isdir(wav_dir):
            for name in os.listdir(wav_dir):
                if name.endswith(".flac"):
                    os.remove(os.path.join(wav_dir, name))
        if text_only:
            os.makedirs(split_dir, exist_ok=True)
            atomic_write_text(
                os.path.join(split_dir, "text"), "".join(f"{j.key} {synth_data.spaced(j.text)}\n" for j in jobs[split])
            )
            seconds = 0.0
        else:
            seconds = write_split(split_dir, jobs[split], opts.nj)
        summary[split] = {
            "utts": len(jobs[split]),
            "minutes": seconds / 60,
            "chars": sum(len(j.text) for j in jobs[split]),
        }
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    d = CorpusOptions()
    parser.add_argument("--out", required=True, help="output dir; gets train/, dev/ and test/")
    parser.add_argument("--num_train", type=int, default=d.num_train)
    parser.add_argument("--num_dev", type=int, default=d.num_dev)
    parser.add_argument("--num_test", type=int, default=d.num_test)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--voices", nargs="+", default=d.voices)
    parser.add_argument("--speeds", nargs="+", type=int, default=d.speeds)
    parser.add_argument("--pitches", nargs="+", type=int, default=d.pitches)
    parser.add_argument("--noise_prob", type=float, default=d.noise_prob)
    parser.add_argument("--nj", type=int, default=d.nj, help="synthesis processes (result does not depend on it)")
    parser.add_argument("--text_only", action="store_true", help="write only the text files (no audio)")
    args = parser.parse_args(argv)
    try:
        opts = CorpusOptions(
            num_train=args.num_train,
            num_dev=args.num_dev,
            num_test=args.num_test,
            seed=args.seed,
            voices=args.voices,
            speeds=args.speeds,
            pitches=args.pitches,
            noise_prob=args.noise_prob,
            nj=args.nj,
        )
        summary = make_corpus(args.out, opts, text_only=args.text_only)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"make_demo_corpus.py: error: {e}", file=sys.stderr)
        return 1
    for split, s in summary.items():
        print(
            f"{split}: {s['utts']} utterances, {s['chars']} characters, {s['minutes']:.1f} min of audio "
            f"-> {os.path.join(args.out, split)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
