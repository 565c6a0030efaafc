"""The default torch device: ``"cuda"`` when a GPU is visible, else ``"cpu"`` (torch is imported on call)."""


def default_device() -> str:
    """``"cuda"`` if CUDA is available, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
