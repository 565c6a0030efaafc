#!/usr/bin/env python3
"""Interpolate a finetuned checkpoint with the model it started from (weight-space ensembling).

Usage:
    python mix_with_init.py                      # 0.5 * model/model.pt + 0.5 * exp/finetune/model.pt
    python mix_with_init.py --weight 0.7 --output exp/finetune/mix0.7.pb

Writes ``(1 - weight) * init + weight * finetuned`` for every floating-point tensor (integer
buffers come from the finetuned checkpoint) as a plain state_dict next to the finetuned one, so
``infer_after_finetune.py --decoding_model_name mix0.5.pb`` decodes it. On the demo, finetuning
alone improves the new data but costs accuracy on the bundled test set; the 0.5 mix keeps most
of the gain and most of the bundled test accuracy (see the README's table).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", default=os.path.join(HERE, "model", "model.pt"), help="the init model's weights")
    p.add_argument("--finetuned", default=os.path.join(HERE, "exp", "finetune", "model.pt"), help="finetuned weights")
    p.add_argument("--weight", type=float, default=0.5, help="weight of the finetuned checkpoint, in [0, 1]")
    p.add_argument("--output", default=None, help="default: mix<weight>.pb next to --finetuned")
    args = p.parse_args(argv)
    if not 0.0 <= args.weight <= 1.0:
        p.error(f"argument --weight: must be in [0, 1], got {args.weight}")
    import torch

    init = torch.load(args.init, map_location="cpu", weights_only=True)
    tuned = torch.load(args.finetuned, map_location="cpu", weights_only=True)
    if set(init) != set(tuned):
        print(f"error: {args.init} and {args.finetuned} hold different tensors", file=sys.stderr)
        return 1
    w = args.weight
    mixed = {k: (1 - w) * init[k] + w * v if v.is_floating_point() else v for k, v in tuned.items()}
    out = args.output or os.path.join(os.path.dirname(args.finetuned), f"mix{w:g}.pb")
    torch.save(mixed, out + ".tmp")
    os.replace(out + ".tmp", out)
    print(f"wrote {out}: {1 - w:g} * {args.init} + {w:g} * {args.finetuned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
