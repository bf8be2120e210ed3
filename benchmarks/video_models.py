"""Step time and memory of the video models: each backbone under each pretext head, against
the same backbone trained as a plain supervised classifier on the same clips (the reference).

One training step = forward, loss, backward and an SGD update, on a fixed random batch. Each
configuration runs in a fresh process, so its peak memory is its own: the peak resident set
on CPU (minus the process's size after building the model), ``torch.cuda.max_memory_allocated``
on a GPU. Printed: median step time over ``--steps`` steps after ``--warmup``, the ratio to the
reference step of the same backbone and input, and the peak memory.

    python benchmarks/video_models.py                       # CPU: r3d-tiny and r3d-18 at 32x32
    python benchmarks/video_models.py --device cuda --size 112 --frames 16 --batch 8

The pretext heads: ``ctp`` (Catch-the-Patch, patches pasted inside the step), ``vcop``
(3-clip tuples: three times the clips per sample), ``speed`` (playback rate), ``simclr`` (two
views per sample). Not part of the tests: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

HEADS = ("supervised", "ctp", "vcop", "speed", "simclr")
BACKBONES = ("r3d-tiny", "r3d-18")


def _measure(backbone_name: str, head: str, args: argparse.Namespace) -> dict:
    """One configuration, in this process: step time and peak memory."""
    import torch
    from torch import nn

    from fedssl.models.base import SSLOptions
    from fedssl.models.ctp import CtPModel
    from fedssl.models.simclr import SimCLR
    from fedssl.models.speed import SpeedPrediction
    from fedssl.models.vcop import VCOP
    from fedssl.models.video_backbones import r3d_18, r3d_tiny

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    build = {"r3d-tiny": r3d_tiny, "r3d-18": r3d_18}[backbone_name]
    backbone = build(ctp_geometry=head == "ctp")
    b, t, s = args.batch, args.frames, args.size
    clips = torch.randn(b, 3, t, s, s)
    if head == "supervised":
        model = nn.Sequential(backbone, nn.Linear(backbone.feature_dim, 10))
        labels = torch.randint(10, (b,))
        criterion = nn.CrossEntropyLoss()

        def loss_fn() -> torch.Tensor:
            return criterion(model(clips_d), labels_d)
    elif head == "ctp":
        model = CtPModel(backbone, num_frames=t, image_size=s)

        def loss_fn() -> torch.Tensor:
            return model.training_loss([clips_d])
    elif head == "vcop":
        model = VCOP(backbone)
        tuples = torch.randn(b, 3, 3, t, s, s)
        labels = torch.randint(6, (b,))

        def loss_fn() -> torch.Tensor:
            return model.training_loss([tuples_d, labels_d])
    elif head == "speed":
        model = SpeedPrediction(backbone)
        labels = torch.randint(len(model.strides), (b,))

        def loss_fn() -> torch.Tensor:
            return model.training_loss([clips_d, labels_d])
    else:
        model = SimCLR.from_options(backbone, SSLOptions())
        second = torch.randn(b, 3, t, s, s)

        def loss_fn() -> torch.Tensor:
            return model.training_loss([clips_d, second_d])
    model = model.to(device).train()
    clips_d = clips.to(device)
    labels_d = labels.to(device) if head in ("supervised", "vcop", "speed") else None
    tuples_d = tuples.to(device) if head == "vcop" else None
    second_d = second.to(device) if head == "simclr" else None
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cuda = device.type == "cuda"
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimiser.step()
        if cuda:
            torch.cuda.synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    peak_mb = (torch.cuda.max_memory_allocated(device) / 2**20 if cuda else
               (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024)
    return {"backbone": backbone_name, "head": head, "step_s": statistics.median(times),
            "peak_mb": peak_mb, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "loss": float(loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8, help="samples per step (default 8)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    parser.add_argument("--size", type=int, default=32, help="clip side in pixels (default 32)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("BACKBONE", "HEAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(*args.one, args)))
        return
    passthrough = [a for a in sys.argv[1:]]
    rows = []
    for backbone in args.backbones:
        for head in args.heads:
            out = subprocess.run([sys.executable, __file__, *passthrough, "--one", backbone, head],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{backbone} {head}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {backbone:9s} {head:10s} {rows[-1]['step_s']:.3f} s/step", flush=True)
    print(f"\n{args.batch} x 3 x {args.frames} x {args.size} x {args.size} clips on "
          f"{args.device}, {args.threads} threads; median of {args.steps} steps\n")
    print(f"{'backbone':9s} {'head':10s} {'params M':>9s} {'s/step':>8s} {'x ref':>6s} "
          f"{'peak MB':>8s}")
    for row in rows:
        ref = next((r["step_s"] for r in rows
                    if r["backbone"] == row["backbone"] and r["head"] == "supervised"), None)
        ratio = f"{row['step_s'] / ref:6.2f}" if ref else "     -"
        print(f"{row['backbone']:9s} {row['head']:10s} {row['params_m']:9.2f} "
              f"{row['step_s']:8.3f} {ratio} {row['peak_mb']:8.0f}")
    print("\nx ref: step time over the same backbone's supervised step on the same clips "
          "(vcop steps see 3 clips per sample, simclr 2)")


if __name__ == "__main__":
    main()
