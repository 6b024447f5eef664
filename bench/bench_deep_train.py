"""Benchmarks of deepdistill's training loop; prints ratios measured in one run.

1. Throughput: the toolkit's generation loop (``train_generation``, method ``ce``) against a plain
   hand-written PyTorch loop on the same model, data, optimiser and schedule (both keep the data on
   the device, slice batches with a seeded permutation and evaluate the validation set once per
   epoch). Target: toolkit / plain throughput >= 0.9.
2. A student generation (``sd_kd`` generation 1, teacher logits cached once) against a plain
   generation 0. Target: <= 1.1x. The per-batch teacher (``cache_teacher=False``, what augmentation
   forces) is shown for contrast.
3. Several small models at once over seeds: ``torch.func.stack_module_state`` + ``functional_call``
   + ``vmap`` (one batched step for all models, each with its own batch order) against training them
   one after the other. Prints the speed ratio and the largest weight difference between the two
   (they compute the same thing: Adam is elementwise, so Adam on stacked parameters is N Adams).
4. The sweep's case for a vectorised trainer: students of one teacher at N ``gt_weight`` values (the
   KD loss; same seed, hence the same initial weights and batches), as one vmapped model against one
   by one, for each of ``--vmap-models`` (mlp, cnn1d). A flag for this would be kept only at >= 1.5x
   on the CPU for both.

    python bench/bench_deep_train.py                      # small CPU size (about a minute)
    python bench/bench_deep_train.py --device cuda --epochs 10 --n-models 16
    python bench/bench_deep_train.py --quick              # a few seconds: tiny sizes, to check that it runs

Timings take the minimum over ``--repeats`` interleaved repetitions (the least disturbed run on a
shared machine). On the CPU they are process CPU times with ``--threads`` threads (default 1), so
that other jobs on a shared machine do not distort the ratios.
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import torch
import torch.nn.functional as F

from deepdistill.core.config import AMP_MODES, DEVICES, TrainConfig
from deepdistill.core.data import load_dataset
from deepdistill.core.models import build_model
from deepdistill.engine.train import load_run_data, resolve_device, train_generation


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(config: TrainConfig, splits, data, device) -> torch.nn.Module:
    """A hand-written loop: what one writes without a toolkit (same model, optimiser, schedule, batches)."""
    torch.manual_seed(123)
    model = build_model(config.model, splits.input_shape, splits.num_classes, **config.model_kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x, y = data["x_train"], data["y_train"]
    n = x.shape[0]
    steps = math.ceil(n / config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps)
    for epoch in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
        for s in range(0, n, config.batch_size):
            idx = perm[s:s + config.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            (model(data["x_val"]).argmax(1) == data["y_val"]).float().mean().item()   # what a loop reads per epoch
    return model


def timed(fn, device) -> float:
    """Seconds taken by ``fn()``: process CPU time on the CPU (steady on a machine shared with other
    jobs, and equal to wall time with one thread and no contention), wall time on CUDA."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    _sync(device)
    t = clock()
    fn()
    _sync(device)
    return clock() - t


def bench_loops(config: TrainConfig, repeats: int, device):
    splits, data = load_run_data(config, device)
    ce = config.generation_settings(0)
    sd = TrainConfig.from_dict(dict(config.to_dict(), method="sd_kd", gt_weight=None, temperature=None))
    sd_nocache = sd.replace(cache_teacher=False)
    teacher, _ = train_generation(config, ce, splits, data, None, device)     # also warms up kernels
    times = {"plain": [], "toolkit": [], "student_cached": [], "student_per_batch": []}
    for _ in range(repeats):   # interleaved, so that a burst of load on the machine hits every variant
        times["plain"].append(timed(lambda: plain_loop(config, splits, data, device), device))
        times["toolkit"].append(timed(lambda: train_generation(config, ce, splits, data, None, device), device))
        times["student_cached"].append(timed(
            lambda: train_generation(sd, sd.generation_settings(1), splits, data, teacher, device), device))
        times["student_per_batch"].append(timed(
            lambda: train_generation(sd_nocache, sd_nocache.generation_settings(1), splits, data, teacher, device), device))
    best = {k: min(v) for k, v in times.items()}
    n_examples = data["x_train"].shape[0] * config.epochs
    print(f"\n[1] {config.model} on {config.dataset} ({data['x_train'].shape[0]} train examples, {config.epochs} epochs, "
          f"batch {config.batch_size}, {device.type}; min of {repeats})")
    print(f"    plain loop     {best['plain']:7.2f} s  ({n_examples / best['plain']:9.0f} examples/s)")
    print(f"    toolkit loop   {best['toolkit']:7.2f} s  ({n_examples / best['toolkit']:9.0f} examples/s)")
    print(f"    throughput ratio toolkit/plain = {best['plain'] / best['toolkit']:.3f}   (target >= 0.9)")
    print("\n[2] student generation (sd_kd, generation 1) vs a plain generation 0 (toolkit loop)")
    print(f"    cached teacher logits   {best['student_cached']:7.2f} s  -> {best['student_cached'] / best['toolkit']:.3f}x "
          f"(target <= 1.1x)")
    print(f"    teacher on every batch  {best['student_per_batch']:7.2f} s  -> "
          f"{best['student_per_batch'] / best['toolkit']:.3f}x")
    return best


def bench_vmap(n_models: int, epochs: int, batch_size: int, repeats: int, device, hidden: int):
    from torch.func import functional_call, grad, stack_module_state, vmap

    splits = load_dataset("mnist1d", seed=0)
    x = splits.train.tensors[0].to(device)                                 # (n, 1, 40)
    y = splits.train.tensors[1].to(device)                                 # (n,)
    n = x.shape[0]
    steps = n // batch_size

    def fresh_models():
        out = []
        for seed in range(n_models):
            torch.manual_seed(seed)
            out.append(build_model("mlp", splits.input_shape, splits.num_classes, hidden=hidden).to(device))
        return out

    def batch_indices(seed, epoch):                                        # each model its own order
        return torch.randperm(n, generator=torch.Generator().manual_seed(1000 * seed + epoch)).to(device)

    def one_by_one():
        models = fresh_models()
        for seed, model in enumerate(models):
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            for epoch in range(epochs):
                perm = batch_indices(seed, epoch)
                for s in range(steps):
                    idx = perm[s * batch_size:(s + 1) * batch_size]
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        return models

    def vmapped():
        models = fresh_models()
        params, buffers = stack_module_state(models)                      # name -> (N, *shape)
        skeleton = copy.deepcopy(models[0]).to("meta")

        def loss_of(p, b, xb, yb):
            return F.cross_entropy(functional_call(skeleton, (p, b), (xb,)), yb)

        grads_of = vmap(grad(loss_of))                                     # per-model gradients in one call
        opt = torch.optim.Adam(list(params.values()), lr=1e-3)
        for epoch in range(epochs):
            perms = torch.stack([batch_indices(seed, epoch) for seed in range(n_models)])   # (N, n)
            for s in range(steps):
                idx = perms[:, s * batch_size:(s + 1) * batch_size]        # (N, b)
                grads = grads_of(params, buffers, x[idx], y[idx])          # x[idx]: (N, b, 1, 40)
                for name, p in params.items():
                    p.grad = grads[name]
                opt.step()
        return params

    loop_t, vmap_t = [], []
    for _ in range(repeats):
        loop_t.append(timed(lambda: one_by_one(), device))
        vmap_t.append(timed(lambda: vmapped(), device))
    models, params = one_by_one(), vmapped()
    diff = max((torch.stack([dict(m.named_parameters())[k] for m in models]) - v).abs().max().item()
               for k, v in params.items())
    print(f"\n[3] {n_models} MLPs (hidden {hidden}) on mnist1d, {epochs} epochs, batch {batch_size}, {device.type}")
    print(f"    one by one  {min(loop_t):7.2f} s")
    print(f"    vmapped     {min(vmap_t):7.2f} s")
    print(f"    speed-up vmapped vs one by one = {min(loop_t) / min(vmap_t):.2f}x   (max |weight difference| {diff:.2e})")


def bench_vmap_weights(model_name: str, n_models: int, epochs: int, batch_size: int, repeats: int, device,
                       n_train: int | None):
    """Students at ``n_models`` gt_weight values of one teacher: vmapped against one by one (same init, same batches)."""
    from torch.func import functional_call, stack_module_state

    splits = load_dataset("mnist1d", seed=0, n_train=n_train)
    x = splits.train.tensors[0].to(device)                                 # (n, 40)
    y = splits.train.tensors[1].to(device)                                 # (n,)
    n, k = x.shape[0], splits.num_classes
    teacher = torch.randn(n, k, generator=torch.Generator().manual_seed(1)).to(device) * 3    # (n, K) fixed logits
    weights = torch.linspace(0.0, 1.0, n_models, device=device)            # gt_weight per student
    temperature = 4.0
    steps = n // batch_size

    def fresh():
        torch.manual_seed(0)
        return build_model(model_name, splits.input_shape, k).to(device)

    def kd(logits, yb, tb, w):                                             # per-model loss, (..., b, K)
        ce = F.cross_entropy(logits.flatten(0, -2), yb.repeat(logits.shape[0] if logits.ndim == 3 else 1),
                             reduction="none").view(logits.shape[:-1]).mean(-1)
        kl = (F.softmax(tb / temperature, -1) * (F.log_softmax(tb / temperature, -1)
              - F.log_softmax(logits / temperature, -1))).sum(-1).mean(-1) * temperature ** 2
        return w * ce + (1 - w) * kl

    def one_by_one():
        out = []
        for w in weights:
            model = fresh()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
            for epoch in range(epochs):
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
                for s_ in range(steps):
                    idx = perm[s_ * batch_size:(s_ + 1) * batch_size]
                    loss = kd(model(x[idx]), y[idx], teacher[idx], w)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            out.append(model)
        return out

    def vmapped():
        models = [fresh() for _ in range(n_models)]
        params, buffers = stack_module_state(models)                      # name -> (N, *shape)
        skeleton = copy.deepcopy(models[0]).to("meta")
        forward = torch.func.vmap(lambda p, b, xb: functional_call(skeleton, (p, b), (xb,)), in_dims=(0, 0, None))
        opt = torch.optim.AdamW(list(params.values()), lr=1e-2, weight_decay=0.0)
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
            for s_ in range(steps):
                idx = perm[s_ * batch_size:(s_ + 1) * batch_size]
                logits = forward(params, buffers, x[idx])                 # (N, b, K): one batch, N models
                # The models share no parameter: the gradient of the sum is each model's own gradient.
                loss = kd(logits, y[idx], teacher[idx], weights).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return params

    loop_t, vmap_t = [], []
    for _ in range(repeats):
        loop_t.append(timed(one_by_one, device))
        vmap_t.append(timed(vmapped, device))
    models, params = one_by_one(), vmapped()
    diff = max((torch.stack([dict(m.named_parameters())[name] for m in models]) - v).abs().max().item()
               for name, v in params.items())
    speedup = min(loop_t) / min(vmap_t)
    print(f"\n[4] {n_models} {model_name} students at gt_weight 0..1 (KD, T = {temperature:g}), mnist1d {n} train, "
          f"{epochs} epochs, batch {batch_size}, {device.type}")
    print(f"    one by one  {min(loop_t):7.2f} s")
    print(f"    vmapped     {min(vmap_t):7.2f} s")
    print(f"    speed-up vmapped vs one by one = {speedup:.2f}x   (target >= 1.5x; max |weight difference| {diff:.2e})")
    return speedup


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="cnn1d", help="model of benchmarks 1-2")
    p.add_argument("--n-train", type=int, default=None, help="training pool size (None: all of mnist1d's 4000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per timed generation")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions; the minimum is reported")
    p.add_argument("--n-models", type=int, default=8, help="models trained at once in benchmark 3")
    p.add_argument("--hidden", type=int, default=100, help="MLP width in benchmark 3")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--amp", default="off", choices=AMP_MODES,
                   help="mixed precision of the toolkit loop on CUDA (benchmarks 1-2; the plain loop stays float32)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU timings are process CPU time)")
    p.add_argument("--skip-vmap", action="store_true")
    p.add_argument("--vmap-models", nargs="+", default=["mlp", "cnn1d"], help="models of benchmark 4")
    p.add_argument("--vmap-students", type=int, default=5, help="students (gt_weight values) in benchmark 4")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds (600 examples, 1 epoch, 1 repeat, 2 small MLPs): checks that it runs; its "
                        "ratios are not measurements")
    args = p.parse_args(argv)
    if args.quick:
        args.n_train, args.epochs, args.repeats, args.n_models, args.hidden = 600, 1, 1, 2, 16
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    config = TrainConfig(dataset="mnist1d", model=args.model, method="ce", epochs=args.epochs, n_train=args.n_train,
                         amp=args.amp,
                         batch_size=args.batch_size, optimizer="adamw", lr=1e-2, weight_decay=0.0, schedule="cosine",
                         device=device.type, checkpoint_every=0)
    clock = "wall time" if device.type == "cuda" else "process CPU time"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}, timings in {clock}"
          + (f", AMP {args.amp}" if args.amp != "off" and device.type == "cuda" else ""))
    bench_loops(config, args.repeats, device)
    if not args.skip_vmap:
        bench_vmap(args.n_models, args.epochs, args.batch_size, args.repeats, device, args.hidden)
        for name in args.vmap_models:
            bench_vmap_weights(name, 2 if args.quick else args.vmap_students, args.epochs, args.batch_size,
                               args.repeats, device, args.n_train)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
