"""Punctuation restoration with a FunASR CT-Transformer model dir: :func:`load_punc` and :class:`PuncModel`.

    >>> from funasr_lite.punc import load_punc
    >>> punc = load_punc("ct-punc-c", device="cpu")   # a model dir, a ModelScope id, or FunASR's alias
    >>> r = punc.punctuate("今天天气怎么样我们去公园吧")
    >>> r.text, r.punc_ids, r.words

``punctuate(text)`` returns what FunASR 1.4.16's ``AutoModel(model=dir).generate(input=text)[0]`` returns
(``text``; ``punc_array`` as ``punc_ids``) for the same weights. The weights load memory-mapped onto a model
built on the meta device, so the 272727 x 256 embedding is never randomly initialised, and its rows are read
from the file only when a text uses them (they are checked to be finite then, not all at load time).
"""

import logging
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from funasr_lite.data.tokenizer import load_token_list
from funasr_lite.errors import CheckpointError, ConfigError, ModelDirError
from funasr_lite.hub.download import resolve_model
from funasr_lite.hub.model_dir import NonFiniteWeightsError, load_state_dict, load_weights_strict
from funasr_lite.models.ct_transformer import CTTransformer
from funasr_lite.punc.config import FULL_WIDTH_MARKS, PuncConfig, load_punc_config
from funasr_lite.punc.model_dir import PuncModelDir, detect_punc_dir
from funasr_lite.punc.units import JiebaSplitter, UnitVocab, split_units
from funasr_lite.punc.window import drive_steps, window_steps
from funasr_lite.utils.device import resolve_device

__all__ = ["PuncResult", "PuncModel", "load_punc"]

logger = logging.getLogger(__name__)

EMBED_KEY = "embed.weight"  # the token embedding's name in the checkpoint


@dataclass(frozen=True)
class PuncResult:
    """The punctuation of one text."""

    text: str  # the punctuated text (FunASR's res[0]["text"]); "" for empty or all-whitespace input
    punc_ids: List[int]  # one class id per unit (FunASR's res[0]["punc_array"]; [] where FunASR gives None)
    words: List[str]  # the units the ids refer to (characters, English words), as they appear in the input


class PuncModel:
    """A loaded CT-Transformer punctuation model (see :func:`load_punc`).

    Args:
        model_dir: the dir's files (:func:`~funasr_lite.punc.model_dir.detect_punc_dir`).
        device: ``cpu``, ``cuda``, ``cuda:N``; default cuda when available.
        split_size: units per inference window; default the config's ``split_size`` (FunASR: 20).
    """

    def __init__(self, model_dir: PuncModelDir, device: Optional[str] = None, split_size: Optional[int] = None):
        self.model_dir = model_dir
        self.device = resolve_device(device)
        self.config: PuncConfig = load_punc_config(model_dir.config)
        self.split_size = self.config.split_size if split_size is None else split_size
        if isinstance(self.split_size, bool) or not isinstance(self.split_size, int) or self.split_size < 2:
            raise ConfigError(f"split_size={self.split_size!r}: must be an integer >= 2")
        self._punc_list = list(self.config.model_conf.punc_list)
        if any(mark in self._punc_list for mark in (",", "?")) and not all(
            mark in self._punc_list for mark in FULL_WIDTH_MARKS
        ):
            logger.warning(
                "%s: punc_list %s has ASCII ',' / '?' where FunASR's inference expects the full-width %s; "
                "sentence ends and commas are then not recognised (as in FunASR)",
                model_dir.config,
                self._punc_list,
                " ".join(FULL_WIDTH_MARKS),
            )
        tc = self.config.tokenizer_conf
        if model_dir.tokens:
            token_list = load_token_list(model_dir.tokens, required=(tc.unk_symbol,))
        elif isinstance(tc.token_list, list):
            token_list = tc.token_list
        else:
            raise ModelDirError(f"{model_dir.root}: no tokens.json and no token_list list in {model_dir.config}")
        try:
            self.vocab = UnitVocab(token_list, tc.unk_symbol)
        except ValueError as e:
            raise ModelDirError(f"{model_dir.tokens or model_dir.config}: {e}") from None
        self._jieba = self._jieba_splitter()
        self.model = self._load_weights()

    def _jieba_splitter(self) -> Optional[JiebaSplitter]:
        path = self.model_dir.jieba_usr_dict
        if path is None and self.config.jieba_usr_dict:
            named = self.config.jieba_usr_dict
            in_dir = os.path.join(self.model_dir.root, named)
            path = in_dir if os.path.isfile(in_dir) else named
            if not os.path.isfile(path):
                raise ModelDirError(f"{self.model_dir.config}: jieba_usr_dict {named}: no such file")
        return JiebaSplitter(path) if path else None

    def _load_weights(self) -> CTTransformer:
        path = self.model_dir.checkpoint
        state = load_state_dict(path, mmap=True, unchecked=(EMBED_KEY,))  # rows: checked in _forward
        for key, rows, what in (
            (EMBED_KEY, len(self.vocab), f"the token list ({self.model_dir.tokens or self.model_dir.config})"),
            ("decoder.weight", len(self._punc_list), f"model_conf.punc_list ({self.model_dir.config})"),
        ):
            if key in state and state[key].shape[0] != rows:
                raise CheckpointError(
                    f"{path}: {key} has {state[key].shape[0]} rows but {what} has {rows} entries: "
                    "they belong to different models"
                )
        mc = self.config.model_conf
        try:
            with torch.device("meta"):  # no random init: the checkpoint's tensors become the parameters
                model = CTTransformer(
                    len(self.vocab), len(self._punc_list), mc.embed_unit, mc.att_unit, self.config.encoder_kwargs()
                )
        except ValueError as e:
            raise ConfigError(f"{self.model_dir.config}: {e}") from None
        load_weights_strict(model, state, path, assign=True)
        return model.to(self.device).eval()

    @property
    def punc_list(self) -> List[str]:
        """Class id -> punctuation mark (``"_"``: none), as config.yaml lists it."""
        return list(self._punc_list)

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, classes) of token ids (B, N); first checks that the embedding rows used are finite
        (the load reads no row of the memory-mapped embedding, see :meth:`_load_weights`).

        Raises:
            NonFiniteWeightsError: a used row holds NaN/Inf (a diverged or corrupt checkpoint).
        """
        used = x.unique()
        rows = self.model.embed.weight[used]
        bad = ~torch.isfinite(rows).all(-1)
        if bool(bad.any()):
            ids = used[bad].tolist()
            padding = " (id 0 also pads the windows of a batch)" if 0 in ids and x.size(0) > 1 else ""
            raise NonFiniteWeightsError(
                f"{self.model_dir.checkpoint}: tensor {EMBED_KEY} holds NaN/Inf values in the rows of token ids "
                f"{ids[:10]}{' ...' if len(ids) > 10 else ''}{padding}: the weights are not finite (a diverged "
                "training run or a corrupt file); use another checkpoint"
            )
        logits, _ = self.model(x, lengths)
        return logits

    def _classify(self, ids: List[int]) -> List[int]:
        """One class per id of one window."""
        return self._classify_batch([ids])[0]

    @torch.inference_mode()
    def _classify_batch(self, windows: List[List[int]]) -> List[List[int]]:
        """Several windows in one padded forward pass (the encoder is padding-invariant)."""
        lengths = [len(w) for w in windows]
        x = torch.zeros(len(windows), max(lengths), dtype=torch.long)
        for row, w in enumerate(windows):
            x[row, : len(w)] = torch.tensor(w, dtype=torch.long)
        logits = self._forward(x.to(self.device), torch.tensor(lengths, device=self.device))
        best = logits.topk(1, dim=-1).indices[..., 0].tolist()
        return [row[:n] for row, n in zip(best, lengths)]

    def _steps(self, text: str):
        """(units, window generator) of a non-blank text."""
        if not isinstance(text, str):
            raise TypeError(f"punctuate takes a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # FunASR fails deep inside on these (its one-byte test encodes)
            raise ValueError(
                f"punctuate: the text has a lone surrogate {text[e.start]!r} at character {e.start}, which is "
                "not Unicode text (decode the source with errors='replace' or fix it)"
            ) from None
        units = self._jieba(text) if self._jieba else split_units(text)
        steps = window_steps(
            units, self.vocab.encode(units), self._punc_list, self.config.model_conf.sentence_end_id, self.split_size
        )
        return units, steps

    def _result(self, units: List[str], text: str, classes: List[int]) -> PuncResult:
        if self._jieba:
            units, classes = JiebaSplitter.expand(units, classes)
        return PuncResult(text, classes, list(units))

    def punctuate(self, text: str) -> PuncResult:
        """Punctuate ``text`` (taken literally: not a file name or URL). Empty or all-whitespace text gives
        an empty result, as in FunASR."""
        if isinstance(text, str) and not text.strip():
            return PuncResult("", [], [])
        units, steps = self._steps(text)
        return self._result(units, *drive_steps(steps, self._classify))

    def punctuate_batch(self, texts: Sequence[str], batch_size: int = 16) -> List[PuncResult]:
        """:meth:`punctuate` of each text; the current windows of up to ``batch_size`` texts are classified
        in one padded forward pass. Equal to :meth:`punctuate` except where two classes' logits tie within
        float rounding (the padded batch rounds differently)."""
        if isinstance(texts, str):
            raise TypeError("punctuate_batch takes a sequence of texts, got one str; use punctuate(text)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        results: List[Optional[PuncResult]] = [None] * len(texts)
        active = []  # [index, units, steps, the window it waits on]
        for i, text in enumerate(texts):
            if isinstance(text, str) and not text.strip():
                results[i] = PuncResult("", [], [])
                continue
            units, steps = self._steps(text)
            active.append([i, units, steps, next(steps)])
        while active:
            group, rest = active[:batch_size], active[batch_size:]
            running = []
            for item, classes in zip(group, self._classify_batch([item[3] for item in group])):
                try:
                    item[3] = item[2].send(classes)
                    running.append(item)
                except StopIteration as done:
                    results[item[0]] = self._result(item[1], *done.value)
            active = running + rest
        return results


def load_punc(model: str, device: Optional[str] = None) -> PuncModel:
    """Load a punctuation model: a local dir, a ModelScope id, or FunASR's alias ``ct-punc`` / ``ct-punc-c``.

    Raises:
        ModelDirError / ConfigError / CheckpointError / HubError: naming the file and the problem."""
    return PuncModel(detect_punc_dir(resolve_model(model)), device=device)
