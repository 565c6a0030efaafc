"""Training: the one training loop (``trainer``), checkpoints and averaging, lr schedules, torchrun DDP,
validation, and ``finetune``, the story that wires a model dir, data and the trainer together."""
