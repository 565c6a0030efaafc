"""Training: the one training loop (``trainer``) and its options (``options``, the ``train_conf`` section), what
a run writes and reports (``outputs``), checkpoints and averaging, lr schedules, torchrun DDP, validation, and
``finetune``, the story that wires a model dir, data and the trainer together."""
