"""Long audio, as FunASR's ``AutoModel(model, vad_model, punc_model)`` runs it: VAD segmentation, ASR on the
segments batched by duration, punctuation over the joined text, and sentences with timestamps.

``long_audio`` holds the per-recording pipeline (:class:`~funasr_lite.pipeline.long_audio.LongAudioPipeline`),
``sentences`` the pure text/timestamp rules, ``subtitles`` SRT formatting and ``job`` the data-dir job behind
``infer.py --vad_model/--punc_model``. The VAD and punctuation models come from ``funasr_lite.vad`` and
``funasr_lite.punc``, imported only when a pipeline is built.
"""
