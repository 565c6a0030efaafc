"""Seeds derived from the run's base seed: one formula for every ``(seed, epoch, rank)`` reseed."""

__all__ = ["epoch_seed"]


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of ``epoch`` on ``rank``: the trainer's python/numpy/torch reseed and the DataLoader's
    worker seeds (dither) both start from it, so an epoch depends only on ``(seed, epoch, rank)``."""
    return seed * 1_000_003 + epoch * 1009 + rank
