"""Data: Kaldi data dirs, audio loading, the fbank/LFR/CMVN frontend, tokenizers, and the training datasets.

Nothing here knows about models: ``datadir`` reads ``wav.scp``/``text``, ``audio`` loads and resamples,
``frontend`` turns waveforms into features, ``tokenizer`` maps text to ids, ``dataset`` and ``shards`` feed
the trainer (small in-memory lists and large streamed shards).
"""
