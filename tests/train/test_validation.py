"""Dev-set failures are per utterance (funasr_lite.train.validation): a dev utterance with a NaN/Inf loss or a failed
decoding is reported once, skipped and counted, the metrics come from the rest, and only a dev set where every
utterance fails stops the run; a skipped training batch names the utterance that caused it."""

import logging
import os

import pytest
import torch
from test_trainer import ToyData, _ft_opts, collate, ft_setup, make_trainer  # noqa: F401

from funasr_lite.errors import DataDirError
from funasr_lite.train import checkpoint as ckpt


def _dev(nan=(), n=10):
    return torch.utils.data.DataLoader(ToyData(n=n, seed=1, nan=set(nan)), batch_size=4, collate_fn=collate)


def _fit(out, dev, max_epoch=2, **kw):
    t = make_trainer(out, max_epoch, **kw)
    t.dev_loader = dev
    t.resume()
    return t, t.fit()


def test_a_nan_dev_utterance_is_reported_once_skipped_and_the_rest_is_measured(tmp_path, caplog):
    _, ref = _fit(tmp_path / "ref", _dev(n=9))  # utterances 0-8: the good ones of the bad dev set below
    with caplog.at_level(logging.WARNING):
        _, res = _fit(tmp_path / "out", _dev(nan={9}))
    reports = [r for r in caplog.records if "dev utterance utt009" in r.getMessage()]
    assert len(reports) == 1 and "NaN/Inf" in reports[0].getMessage()  # once per run, not once per epoch
    assert caplog.text.count("1 dev utterance(s) failed and were left out") == 2
    for got, want in zip(res.records, ref.records):  # measured over the 9 good utterances
        assert got.dev_acc == pytest.approx(want.dev_acc) and got.dev_cer == pytest.approx(want.dev_cer)
    assert res.records[0].dev_loss is not None and os.path.isfile(tmp_path / "out" / "valid.acc.ave.pb")


def test_a_dev_utterance_whose_decoding_fails_is_skipped(tmp_path, caplog, monkeypatch):
    import test_trainer

    real = test_trainer.toy_decode

    def decode(model, speech, lengths):  # like CIF on NaN weights: "cannot convert float NaN to integer"
        if (speech.abs().amax(dim=(1, 2)) > 100).any():
            raise ValueError("cannot convert float NaN to integer")
        return real(model, speech, lengths)

    data = ToyData(n=10, seed=1)
    data.items[2] = (data.items[2][0], data.items[2][1] * 1e4, data.items[2][2])
    dev = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate)
    t = make_trainer(tmp_path, 1)
    t.dev_loader, t.decode_fn = dev, decode
    with caplog.at_level(logging.WARNING):
        res = t.fit()
    assert "dev utterance utt002: decoding failed: cannot convert float NaN to integer" in caplog.text
    assert res.records[0].dev_cer is not None and ckpt.load_resume_state(str(tmp_path))["epoch"] == 1


def test_a_dev_set_where_every_utterance_fails_is_one_clear_error(tmp_path):
    with pytest.raises(DataDirError, match="epoch 1: all 10 dev utterances failed .* fix or replace the dev set"):
        _fit(tmp_path, _dev(nan=range(10)), max_epoch=1)


def test_a_skipped_training_batch_names_its_utterance(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _fit(tmp_path, _dev(), max_epoch=1, train=ToyData(nan={4}), decode=False)
    lines = [r.getMessage() for r in caplog.records if "non-finite loss, step skipped" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("caused by utterance(s) utt004"), lines


def test_finetune_with_a_dev_wav_that_yields_nan_still_saves_every_epoch(ft_setup, tmp_path, caplog):  # noqa: F811
    import shutil

    import soundfile as sf

    from funasr_lite.train.finetune import finetune

    model, data = ft_setup
    bad = tmp_path / "data"
    shutil.copytree(data, bad)
    lines = (bad / "dev" / "wav.scp").read_text(encoding="utf-8").splitlines()
    key, path = lines[0].split(" ", 1)
    audio, sr = sf.read(path, dtype="float32")
    sf.write(tmp_path / "huge.wav", audio * 1e30, sr, subtype="FLOAT")  # finite samples, NaN features
    lines[0] = f"{key} {tmp_path / 'huge.wav'}"
    (bad / "dev" / "wav.scp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        res = finetune(*_ft_opts(model, str(bad), tmp_path / "out", device="cpu", max_epoch=2))
    assert res["epochs"] == 2 and res["last_dev_cer"] is not None and os.path.isfile(tmp_path / "out" / "model.pt")
    assert key in caplog.text  # reported by name (by the loader's pre-flight check or by validation)
