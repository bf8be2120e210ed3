"""Can Catch-the-Patch be learnt on these clips? A central CtP run that reports, every
``--every`` steps, how much of the held-out trajectory targets the model predicts.

The measure is R² per target coordinate, ``1 - E[(pred - target)²] / E[target²]`` (the
targets' mean is 0 by construction, so R² 0 is the blind predictor that outputs zeros), on a
fixed held-out batch of patched clips, next to the training loss. Backgrounds:

``motion-digits``
    16-frame windows of the embedded dataset (its train split; the held-out batch comes from
    videos never trained on).
``noise``
    Static per-video uniform noise: a moving patch cut from it shows only by its motion, the
    easiest clips for the pretext (a check that model, head and targets fit together).

Configs: ``paper`` is the 32-px preset (:data:`fedssl.models.ctp.CTP_CONFIGS`); ``easy`` is
one opaque, always-visible rectangle. ``--loss mse`` swaps CtP's smooth-L1 for a squared
error (larger gradients for large errors).

    python benchmarks/ctp_learnability.py --background noise --config easy --steps 400
    python benchmarks/ctp_learnability.py --background motion-digits --steps 2000

Not part of the tests: it trains for minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

EASY = {"num_patches": 1, "visible_prob": 1.0, "soft_edge_prob": 0.0, "opacity": (1.0, 1.0),
        "mask_probs": (1.0, 0.0, 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--background", choices=("motion-digits", "noise"),
                        default="motion-digits")
    parser.add_argument("--config", choices=("paper", "easy"), default="paper")
    parser.add_argument("--loss", choices=("smooth-l1", "mse"), default="smooth-l1")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from fedssl.clients.video_ssl import clip_tensor, random_windows
    from fedssl.models.ctp import CtPModel, ctp_config, ctp_loss, trajectory_targets
    from fedssl.models.video_backbones import r3d_tiny

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.background == "motion-digits":
        from fedssl.datasets.motion_digits import load_motion_digits

        videos = torch.from_numpy(np.array(load_motion_digits("train").clips))
    else:
        noise = torch.Generator().manual_seed(args.seed)
        videos = (torch.rand(1000, 1, 32, 32, 3, generator=noise) * 255).to(torch.uint8)
        videos = videos.expand(-1, 64, -1, -1, -1)
    held_out, train = videos[-64:], videos[:-64]

    def windows(batch: torch.Tensor, generator: np.random.Generator) -> torch.Tensor:
        return clip_tensor(random_windows(batch, 16, generator), torch.device("cpu"), 32)

    config = ctp_config(32)
    if args.config == "easy":
        config = dataclasses.replace(config, **EASY)
    model = CtPModel(r3d_tiny(ctp_geometry=True), num_frames=16, image_size=32, config=config)
    optimizer = (torch.optim.Adam(model.parameters(), lr=args.lr) if args.optimizer == "adam"
                 else torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                                      weight_decay=1e-4))
    held_clips, held_boxes = model.pretext(windows(held_out, np.random.default_rng(1)), seed=1)
    held_targets = trajectory_targets(held_boxes, config.target_stds)

    def loss_of(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(preds, targets) if args.loss == "mse" else ctp_loss(preds, targets)

    print(f"{args.background}, {args.config} config, {args.loss}, {args.optimizer} "
          f"lr {args.lr:g}, batch {args.batch}", flush=True)
    print("step  train-loss  held-out R² (dcx, dcy, dlog w, dlog h)  s", flush=True)
    losses, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        index = torch.as_tensor(rng.choice(len(train), args.batch, replace=False))
        clips, boxes = model.pretext(windows(train[index], rng))
        loss = loss_of(model.predict(clips, boxes), trajectory_targets(boxes,
                                                                       config.target_stds))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 40)
        optimizer.step()
        losses.append(loss.item())
        if step % args.every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                preds = model.predict(held_clips, held_boxes)
            model.train()
            r2 = 1 - ((preds - held_targets) ** 2).mean(dim=(0, 1, 2)) \
                / (held_targets**2).mean(dim=(0, 1, 2))
            print(f"{step:5d}  {np.mean(losses[-args.every:]):9.3f}  "
                  f"{' '.join(f'{v:6.3f}' for v in r2.tolist())}  "
                  f"{time.perf_counter() - start:6.0f}", flush=True)


if __name__ == "__main__":
    main()
