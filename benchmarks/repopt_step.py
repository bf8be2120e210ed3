"""Local training cost of FedRepOpt's variants: step time and peak memory per client step.

FedRepOpt's argument (Lau et al., ACCV 2024) is that the plain network trained with RepOptSGD
is cheaper on the device than the multi-branch network it learns like. Per network and
variant, one client-shaped step (batch 32, cross-entropy with label smoothing, SGD lr 0.01,
weight decay 4e-5 off BN/bias) is timed:

* ``Tr``: the training-time multi-branch network (rep mode, a BN per branch), torch SGD;
* ``CSLA``: multi-branch with constant scales, torch SGD;
* ``Inf``: the plain network, torch SGD;
* ``FedRepOpt``: the plain network, RepOptSGD with the masks of its scales.

Each (network, variant) runs in a fresh subprocess so that memory figures do not mix. Memory
is reported three ways: ``activations-MiB``, the tensors autograd saves for the backward pass
(counted exactly with ``saved_tensors_hooks``, each storage once: the part that multi-branch
training inflates); ``state-MiB``, weights + gradients + optimiser state + RepOpt masks; and
the measured peak: on CPU the growth of the process's peak resident set over its resident set
before the timed steps (coarse: the allocator's caching blurs it), on CUDA
``torch.cuda.max_memory_allocated`` during the steps.

    python benchmarks/repopt_step.py [--networks repopt-vgg-b1 repopt-ghost-0.5x]
        [--image-size 64] [--classes 200] [--steps 5] [--threads 1] [--device cpu|cuda]

Defaults: the paper's networks at Tiny-ImageNet's 64x64 with 200 classes. Ratios are to
``Tr`` of the same network in the same invocation. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = {"Tr": ("rep", False), "CSLA": ("csla", False), "Inf": ("target", False),
            "FedRepOpt": ("target", True)}


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() // 1024


def measure(network: str, variant: str, *, image_size: int, classes: int, steps: int,
            threads: int, device: str) -> dict:
    """Time ``steps`` training steps after two warm-up steps; runs in the calling process."""
    import torch
    from torch.nn import functional as F

    from fedssl.clients.image_classification import weight_decay_groups
    from fedssl.clients.repopt import RepOptSGD
    from fedssl.models.repopt import build_repopt_model, default_scales, repopt_grad_masks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mode, masked = VARIANTS[variant]
    model = build_repopt_model(network, mode=mode, num_classes=classes).to(device)
    groups = weight_decay_groups(model, 4e-5)
    if masked:
        masks = repopt_grad_masks(model, default_scales(network))
        optimizer = RepOptSGD(groups, lr=0.01, grad_masks=masks)
    else:
        optimizer = torch.optim.SGD(groups, lr=0.01)
    images = torch.randn(32, 3, image_size, image_size, device=device)
    labels = torch.randint(0, classes, (32,), device=device)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    model.train()
    for _ in range(2):
        step()
    sync()
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    activations = sum(n for ptr, n in saved.items() if ptr not in parameter_storages)
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters()
                                                 if p.grad is not None]
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    tensors += list(getattr(optimizer, "grad_masks", {}).values())
    state_bytes = sum(t.numel() * t.element_size() for t in tensors)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _rss_kib()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {
        "network": network,
        "variant": variant,
        "params-M": sum(p.numel() for p in model.parameters()) / 1e6,
        "step-ms": 1000 * statistics.median(times),
        "activations-MiB": activations / 2**20,
        "state-MiB": state_bytes / 2**20,
        "peak-MiB": peak_mib,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+",
                        default=["repopt-vgg-b1", "repopt-ghost-0.5x"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--one", nargs=2, metavar=("NETWORK", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    options = {"image_size": args.image_size, "classes": args.classes, "steps": args.steps,
               "threads": args.threads, "device": args.device}
    if args.one:
        print(json.dumps(measure(*args.one, **options)))
        return 0

    import pandas as pd

    rows = []
    for network in args.networks:
        for variant in args.variants:
            command = [sys.executable, __file__, "--one", network, variant,
                       "--image-size", str(args.image_size), "--classes", str(args.classes),
                       "--steps", str(args.steps), "--threads", str(args.threads),
                       "--device", args.device]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {network:20s} {variant:10s} {rows[-1]['step-ms']:9.1f} ms", flush=True)
    table = pd.DataFrame(rows)
    for column in ("step-ms", "activations-MiB", "peak-MiB"):
        reference = table[table["variant"] == "Tr"].set_index("network")[column]
        table[f"{column} / Tr"] = table.apply(
            lambda r, c=column, ref=reference: r[c] / ref[r["network"]]
            if r["network"] in ref and ref[r["network"]] else float("nan"), axis=1)
    print(f"\nbatch 32, {args.image_size}x{args.image_size}, {args.classes} classes, "
          f"{args.device}, {args.threads} threads, median of {args.steps} steps")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
