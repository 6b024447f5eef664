"""Does Beta smoothing's EMA variant matter? The toolkit's EMA ("copy") against [ZS20]'s ("zs20").

[ZS20]'s code builds the EMA network from a separately initialised network (never a copy of the
model), averages its parameters only, and predicts with it in train mode (BatchNorm on the batch's
statistics); the toolkit's default starts the EMA as a copy of the model, averages BatchNorm's
running statistics too and predicts in eval mode (``deepdistill/core/ema.py``, ``docs/theory.md`` section 4).
The difference can only show in a network with BatchNorm, so this runs a CIFAR-style ResNet-18 of
reduced width on scikit-learn's bundled 8x8 digits with 20% symmetric label noise: Beta smoothing
with each variant and plain cross-entropy for reference, several seeds, the same seeds for each (so
the per-seed difference is paired). Prints test accuracy, NLL and ECE as mean ± sd over seeds, and
the paired difference zs20 - copy.

    python examples/ema_variant.py --fast          # seconds: a small MLP, one epoch, one seed (a check)
    python examples/ema_variant.py                 # the CPU measurement (about 15 minutes on 2 busy cores)
    python examples/ema_variant.py --gpu           # [ZS20]'s setting: CIFAR-100, ResNet-18, 150 epochs, 5 seeds
                                                   # (needs CIFAR-100 in --data-root and a GPU; hours)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdistill.engine.results import mean_sd  # noqa: E402
from deepdistill.drivers.sweep import expand_grid, run_sweep  # noqa: E402

CPU = dict(dataset="digits", data_options={"flat": False}, model="resnet18", model_kwargs={"width": 16},
           label_noise=0.2, epochs=12, batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
           schedule="cosine", device="cpu", checkpoint_every=0)
FAST = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, label_noise=0.2, n_train=300,
            epochs=1, batch_size=64, lr=1e-2, device="cpu", checkpoint_every=0)
# [ZS20]'s protocol: SGD lr 0.1, momentum 0.9, wd 1e-4, batch 128, 150 epochs (their step decay at 1/3 and
# 2/3; the toolkit's cosine here), best-validation checkpoint, 5 repeats.
GPU = dict(dataset="cifar100", model="resnet18", epochs=150, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
           weight_decay=1e-4, schedule="cosine", device="cuda", amp="bf16", checkpoint_every=5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="seconds: a small MLP, one epoch, one seed (a check)")
    parser.add_argument("--gpu", action="store_true", help="[ZS20]'s CIFAR-100 setting on a GPU (hours)")
    parser.add_argument("--data-root", default=None, help="folder holding CIFAR-100 (with --gpu)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", default="out/ema_variant")
    args = parser.parse_args(argv)
    base = dict(FAST if args.fast else GPU if args.gpu else CPU)
    if args.gpu:
        base["data_root"] = args.data_root
    seeds = args.seeds or ([0] if args.fast else [0, 1, 2, 3, 4] if args.gpu else [0, 1, 2])
    torch.set_num_threads(args.threads)
    configs = (expand_grid({**base, "ema_variant": "copy"}, methods=["beta"], generations=[1], seeds=seeds)
               + expand_grid({**base, "ema_variant": "zs20"}, methods=["beta"], generations=[1], seeds=seeds)
               + expand_grid(base, methods=["ce"], generations=[1], seeds=seeds))
    started = time.perf_counter()
    records = run_sweep(configs, args.out_dir, progress=False)
    wall = time.perf_counter() - started
    rows = {}
    for cfg, rec in zip(configs, records):
        name = "ce" if cfg.method == "ce" else f"beta, EMA {cfg.ema_variant}"
        rows.setdefault(name, {})[cfg.seed] = rec["generations"][0]["test"]
    print(f"{base['dataset']}, {base['model']} {base.get('model_kwargs', {})}, label noise {base['label_noise']:.0%}, "
          f"{base['epochs']} epochs, seeds {seeds}; session {wall:.0f} s (finished runs are reused)")
    print(f"{'':<18} {'test accuracy':>16} {'test NLL':>16} {'test ECE':>16}")
    for name, by_seed in rows.items():
        cells = [mean_sd([m[k] for m in by_seed.values()]) for k in ("accuracy", "nll", "ece")]
        print(f"{name:<18} " + " ".join(f"{m:>8.3f} ± {s:<5.3f}" if s == s else f"{m:>16.3f}" for m, s in cells))
    a, b = rows["beta, EMA copy"], rows["beta, EMA zs20"]
    for k in ("accuracy", "nll", "ece"):
        diffs = [b[s][k] - a[s][k] for s in seeds]
        sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
        print(f"paired difference zs20 - copy, test {k}: {statistics.fmean(diffs):+.4f} (sd over seeds {sd:.4f}; "
              f"per seed {', '.join(f'{d:+.4f}' for d in diffs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
