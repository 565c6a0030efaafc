"""Data: Kaldi data dirs, audio loading, the fbank/LFR/CMVN frontend, tokenizers, and the training datasets.

Nothing here knows about models: ``datadir`` reads ``wav.scp``/``text``, ``audio`` loads and resamples,
``frontend`` turns waveforms into features, ``tokenizer`` maps text to ids. Training data: ``options`` holds
``dataset_conf`` (:class:`~funasr_lite.data.options.DatasetConf`), ``filters`` is the pre-flight scan,
``batching`` the length buckets and collate, ``shards`` the large streamed shards, and ``dataset`` the
DataLoaders the trainer uses (no cycles: shards imports filters; dataset imports all of them).
"""
