"""Per-stage timers for ``tools/bench_infer.py --profile``: where a decode's seconds go.

A helper module, not a command. :class:`StageProfile` wraps the ``forward`` of a model's stages
(frontend, encoder, predictor, decoder) and any plain function (the search, audio reading) with wall-clock
timers, and counts the FLOPs and the seconds of every ``nn.Linear`` under each stage, so the report can say
how close the Linear GEMMs come to the machine's measured GEMM peak (:func:`gemm_peak_gflops`). The timers
are a few microseconds per call, so they barely change what they measure (unlike cProfile).
"""

import time
from typing import Any, Callable, Dict, Optional

__all__ = ["StageProfile", "gemm_peak_gflops", "format_profile"]


class StageProfile:
    """Wall seconds per stage, and Linear-layer FLOPs/seconds per stage (stages are not nested)."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self.calls: Dict[str, int] = {}
        self.linear_flops: Dict[str, float] = {}
        self.linear_seconds: Dict[str, float] = {}

    def _add(self, name: str, dt: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        self.calls[name] = self.calls.get(name, 0) + 1

    def wrap_function(self, name: str, owner: Any, attr: str) -> None:
        """Time every call of ``owner.attr`` (a module-level function or a bound method) under ``name``."""
        original: Callable = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - start)

        setattr(owner, attr, timed)

    def wrap_module(self, name: str, module: Any) -> None:
        """Time ``module``'s forward under ``name`` and count the Linear layers inside it (quantized ones too:
        anything with ``in_features``/``out_features``)."""
        self.wrap_function(name, module, "forward")
        for sub in module.modules():
            if hasattr(sub, "in_features") and hasattr(sub, "out_features") and sub is not module:
                self._hook_linear(name, sub)

    def _hook_linear(self, name: str, linear: Any) -> None:
        starts = []

        def pre(_mod: Any, _inputs: Any) -> None:
            starts.append(time.perf_counter())

        def post(mod: Any, inputs: Any, _output: Any) -> None:
            dt = time.perf_counter() - starts.pop()
            rows = inputs[0].numel() // mod.in_features
            self.linear_flops[name] = self.linear_flops.get(name, 0.0) + 2.0 * rows * mod.in_features * mod.out_features
            self.linear_seconds[name] = self.linear_seconds.get(name, 0.0) + dt

        linear.register_forward_pre_hook(pre)
        linear.register_forward_hook(post)

    def as_dict(self, total_s: float, peak_gflops: Optional[float]) -> Dict[str, Any]:
        """JSON-able summary: per stage wall s, share of the total, Linear GFLOP and achieved GFLOP/s."""
        stages = {}
        for name, sec in self.seconds.items():
            flops = self.linear_flops.get(name, 0.0)
            lin_s = self.linear_seconds.get(name, 0.0)
            stages[name] = {
                "seconds": sec,
                "calls": self.calls[name],
                "share": sec / total_s if total_s else None,
                "linear_gflop": flops / 1e9,
                "linear_seconds": lin_s,
                "linear_gflops_per_s": flops / 1e9 / lin_s if lin_s else None,
            }
        other = total_s - sum(self.seconds.values())
        return {"total_s": total_s, "other_s": other, "gemm_peak_gflops": peak_gflops, "stages": stages}


def gemm_peak_gflops(threads: int, seconds: float = 1.0) -> float:
    """Measured fp32 GEMM rate (GFLOP/s) of ``torch.mm`` on a (1024 x 512) @ (512 x 2048) product, the
    shape of a paraformer-large FFN layer on a batch of frames, with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 512), torch.randn(512, 2048)
    torch.mm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
    return 2.0 * 1024 * 512 * 2048 * n / (time.perf_counter() - start) / 1e9


def format_profile(side: str, prof: Dict[str, Any]) -> str:
    """A small table of one side's profile."""
    peak = prof.get("gemm_peak_gflops")
    lines = [
        f"{side}: decode {prof['total_s']:.2f} s"
        + (f"; fp32 GEMM peak {peak:.0f} GFLOP/s (torch.mm 1024x512x2048)" if peak else "")
    ]
    lines.append(
        f"  {'stage':<10} {'wall s':>8} {'share':>6} {'calls':>6} {'Linear GFLOP':>12} {'Linear s':>9} {'GFLOP/s':>8}"
    )
    for name, st in sorted(prof["stages"].items(), key=lambda kv: -kv[1]["seconds"]):
        rate = st["linear_gflops_per_s"]
        lines.append(
            f"  {name:<10} {st['seconds']:>8.2f} {st['share'] or 0:>6.1%} {st['calls']:>6d} "
            f"{st['linear_gflop']:>12.1f} {st['linear_seconds']:>9.2f} {'-' if rate is None else f'{rate:.0f}':>8}"
        )
    share = prof["other_s"] / prof["total_s"] if prof["total_s"] else 0.0
    lines.append(f"  {'other':<10} {prof['other_s']:>8.2f} {share:>6.1%}  (audio reading, batching, outputs, ...)")
    return "\n".join(lines)
