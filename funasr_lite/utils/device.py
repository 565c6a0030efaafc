"""The default torch device: one rule for every entry point."""

__all__ = ["default_device"]


def default_device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"`` (torch is imported only when this is called)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
