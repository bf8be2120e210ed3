"""Inference cost of AudioInceptionNeXt vs AudioRepInceptionNeXt, multi-branch and fused.

AudioRepInceptionNeXt (Lau, Rehman, Po, Neurocomputing 2024) trains AudioInceptionNeXt-like
blocks with parallel 21/11/3-tap depthwise branches and fuses each set into one 21-tap
depthwise conv for inference (:func:`fedssl.models.reparam.reparameterize`); the paper's
claim is a cheaper, faster inference network than AudioInceptionNeXt (Lau et al., 2023) at
the same accuracy. Per model and input size this prints:

* ``params-M``: parameters (millions), the 309-class head included (VGG-Sound);
* ``GMACs``: multiply-accumulates of one forward pass at batch 1, counted by
  ``torch.utils.flop_counter.FlopCounterMode``, which counts FLOPs = 2·MACs for convolutions
  (grouped ones correctly) and linear layers; we report its total / 2. BatchNorm, ReLU,
  pooling and element-wise adds are not counted (they are not MACs);
* ``b1-ms``: median latency of ``--repeats`` forward passes at batch 1 after ``--warmup``
  passes (the three models take turns, one pass each per round), eval mode,
  ``torch.no_grad``; on CUDA also ``b32-ms`` at batch 32 (synchronised; cuDNN autotuning on,
  as is usual for fixed-shape inference);
* ratios to AudioInceptionNeXt of the same input size (``x-params``, ``x-MACs``, and
  ``speed-up`` = its latency / this latency), and, below the table, fused vs multi-branch and
  fused vs a ResNet-50.

The paper's "> 50 % fewer parameters and FLOPs" is measured against heavier CNNs such as
Auditory SlowFast, whose pathways are ResNet-50s, not against AudioInceptionNeXt: so the base
variant also runs next to torchvision's ResNet-50 with a one-channel stem (``--no-resnet``
leaves it out). Auditory SlowFast itself is not built here.

Input sizes are the papers': 1×1×512×128 (VGG-Sound, 5.12 s at 10 ms hop, 128 mel bins) and
1×1×416×128 (EPIC-SOUNDS).

    python benchmarks/audio_models.py [--variant base] [--repeats 20] [--warmup 3]
        [--threads 1] [--device cpu|cuda] [--classes 309]

Not a test: latencies depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import resnet50

from fedssl.models.audio_inception import (
    AUDIO_INCEPTION_VARIANTS,
    audio_inceptionnext,
    audio_rep_inceptionnext,
)
from fedssl.models.reparam import reparameterize

INPUTS = {"VGG-Sound 512x128": (512, 128), "EPIC-SOUNDS 416x128": (416, 128)}
REFERENCE = "AudioInceptionNeXt"
RESNET = "ResNet-50 (torchvision, 1-ch stem)"
MULTI, FUSED = "AudioRepInceptionNeXt (multi-branch)", "AudioRepInceptionNeXt (fused)"


def resnet50_audio(classes: int) -> nn.Module:
    """torchvision's ResNet-50 with a one-channel stem, for log-mel input."""
    model = resnet50(num_classes=classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def build_models(variant: str, classes: int, *, with_resnet: bool = False) -> dict[str, nn.Module]:
    """The networks compared, in eval mode."""
    multi = audio_rep_inceptionnext(variant, num_classes=classes)
    models = {
        REFERENCE: audio_inceptionnext(variant, num_classes=classes).eval(),
        MULTI: multi.eval(),
        FUSED: reparameterize(multi),
    }
    if with_resnet:
        models[RESNET] = resnet50_audio(classes).eval()
    return models


def count_macs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates of ``model(x)``: FlopCounterMode's FLOPs (2 per MAC) / 2."""
    x = x.to(next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / 2


def latencies_ms(models: dict[str, nn.Module], x: torch.Tensor, *, repeats: int,
                 warmup: int) -> dict[str, float]:
    """Median wall time of ``model(x)`` in milliseconds for each model (synchronised on CUDA).

    The models take turns, one pass each per round, so that a slow spell of the machine
    (other processes, frequency changes) falls on all of them rather than on one.
    """
    sync: Callable[[], None] = (torch.cuda.synchronize if x.device.type == "cuda"
                                else (lambda: None))
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for i in range(warmup + repeats):
            for name, model in models.items():
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="base", choices=AUDIO_INCEPTION_VARIANTS)
    parser.add_argument("--classes", type=int, default=309)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-resnet", action="store_true", help="leave out the ResNet-50 row")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")

    import pandas as pd

    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    models = {name: model.to(args.device)
              for name, model in build_models(args.variant, args.classes,
                                       with_resnet=args.variant == "base" and not args.no_resnet
                                       ).items()}
    batches = [1, 32] if args.device == "cuda" else [1]
    rows = []
    for input_name, (frames, bins) in INPUTS.items():
        rows_here = {name: {"input": input_name, "model": name,
                            "params-M": sum(p.numel() for p in model.parameters()) / 1e6,
                            "GMACs": count_macs(model, torch.randn(1, 1, frames, bins)) / 1e9}
                     for name, model in models.items()}
        for batch in batches:
            x = torch.randn(batch, 1, frames, bins, device=args.device)
            timed = latencies_ms(models, x, repeats=args.repeats, warmup=args.warmup)
            for name, ms in timed.items():
                rows_here[name][f"b{batch}-ms"] = ms
        for name, row in rows_here.items():
            print(f"  {input_name:20s} {name:38s} {row['b1-ms']:9.1f} ms", flush=True)
        rows += rows_here.values()
    table = pd.DataFrame(rows)
    reference = table[table["model"] == REFERENCE].set_index("input")
    table["x-params"] = table["params-M"] / table["input"].map(reference["params-M"])
    table["x-MACs"] = table["GMACs"] / table["input"].map(reference["GMACs"])
    for batch in batches:
        column = f"b{batch}-ms"
        table[f"speed-up b{batch}"] = table["input"].map(reference[column]) / table[column]
    device = (torch.cuda.get_device_name() if args.device == "cuda"
              else f"cpu, {args.threads} thread(s)")
    print(f"\n{args.variant} variants, {args.classes} classes, {device}, median of "
          f"{args.repeats} runs after {args.warmup} warm-up; GMACs = FlopCounterMode FLOPs / 2")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    for other in (MULTI, RESNET):
        if other not in models:
            continue
        print(f"\nAudioRepInceptionNeXt (fused) vs {other}:")
        for input_name in INPUTS:
            part = table[table["input"] == input_name].set_index("model")
            base, fused = part.loc[other], part.loc[FUSED]
            speed = ", ".join(f"speed-up b{b} {base[f'b{b}-ms'] / fused[f'b{b}-ms']:.2f}x"
                              for b in batches)
            print(f"  {input_name}: params {fused['params-M'] / base['params-M']:.3f}x, "
                  f"MACs {fused['GMACs'] / base['GMACs']:.3f}x, {speed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
