"""The files of a CT-Transformer punctuation model dir, found as FunASR 1.4.16's AutoModel finds them.

* With ``configuration.json`` holding ``file_path_metas``: its entries name the files (relative to the dir):
  ``config`` (config.yaml), ``init_param`` (model.pt), ``tokenizer_conf.token_list`` (tokens.json) and, for the
  word-level cn-en model, ``jieba_usr_dict``.
* Otherwise: ``config.yaml``, ``model.pt``, ``tokens.json`` (else ``tokens.txt``) and ``jieba_usr_dict`` when
  the dir has one.

A config.yaml may also name ``jieba_usr_dict`` itself (a path, resolved against the dir first). The FunASR
0.x layout (``punc.pb`` + ``punc.yaml``, named by ``configuration.json``'s ``model.punc_model_name``) is
refused with a clear error: FunASR 1.4.16 cannot load it either.
"""

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from funasr_lite.errors import ModelDirError
from funasr_lite.hub.metas import metas_name, read_configuration

__all__ = ["PuncModelDir", "detect_punc_dir"]


@dataclass(frozen=True)
class PuncModelDir:
    """Absolute paths of one punctuation model dir's files."""

    root: str  # the directory
    config: str  # config.yaml
    checkpoint: str  # model.pt
    tokens: Optional[str]  # tokens.json / tokens.txt; None when config.yaml lists token_list itself
    jieba_usr_dict: Optional[str]  # jieba user dictionary (word-level model), else None


def _metas(root: str) -> Optional[Dict]:
    path = os.path.join(root, "configuration.json")
    if not os.path.lexists(path):  # a FIFO or a dangling link is an error (read_utf8), not "none"
        return None
    conf = read_configuration(path)
    model = conf.get("model") if isinstance(conf.get("model"), dict) else {}
    if "punc_model_name" in model:
        raise ModelDirError(
            f"{root}: a FunASR 0.x punctuation dir ({model['punc_model_name']} + "
            f"{model.get('punc_model_config', 'punc.yaml')}); FunASR 1.4.16 and funasr-lite load the 1.x layout "
            "(config.yaml, model.pt, tokens.json): download the model's current ModelScope revision"
        )
    metas = conf.get("file_path_metas")
    if metas is not None and not isinstance(metas, dict):
        raise ModelDirError(f"{path}: file_path_metas must be a JSON object, got {metas!r}")
    return metas or {}


def detect_punc_dir(root: str) -> PuncModelDir:
    """Find the files of punctuation model dir ``root``.

    Raises:
        ModelDirError: the dir does not exist, is a 0.x dir, or a named file is missing (all are listed)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ModelDirError(f"punctuation model dir {root} does not exist")
    metas = _metas(root)
    if metas:
        source = os.path.join(root, "configuration.json")
        names = {
            "config": metas_name(metas, ("config",), "config.yaml", source),
            "checkpoint": metas_name(metas, ("init_param",), "model.pt", source),
            "tokens": metas_name(metas, ("tokenizer_conf", "token_list"), None, source),
            "jieba": metas_name(metas, ("jieba_usr_dict",), None, source),
        }
    else:
        tokens = "tokens.json" if os.path.isfile(os.path.join(root, "tokens.json")) else "tokens.txt"
        names = {"config": "config.yaml", "checkpoint": "model.pt", "tokens": tokens, "jieba": "jieba_usr_dict"}
        if not os.path.isfile(os.path.join(root, tokens)):
            names["tokens"] = None  # then config.yaml must list the tokens
        if not os.path.isfile(os.path.join(root, "jieba_usr_dict")):
            names["jieba"] = None  # optional without configuration.json
    missing: List[str] = []
    paths: Dict[str, Optional[str]] = {}
    what = {"config": "model config", "checkpoint": "weights", "tokens": "token list", "jieba": "jieba user dictionary"}
    for key, name in names.items():
        if not name:
            paths[key] = None
            continue
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            missing.append(f"{name} ({what[key]})")
        paths[key] = path
    if missing:
        raise ModelDirError(f"punctuation model dir {root} is missing: " + "; ".join(missing))
    return PuncModelDir(root, paths["config"], paths["checkpoint"], paths["tokens"], paths["jieba"])
