"""The ``fedssl`` command: ``fedssl run``, ``fedssl experiment``, ``fedssl hyper-search``,
``fedssl select-best``, ``fedssl finetune``, ``fedssl video-to-zip`` and ``fedssl deploy``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from fedssl.config import ConfigError, parse_overrides
from fedssl.launch import (
    Federation,
    LocalSuperLink,
    RayClusterUnreachable,
    RoundProgress,
    check_ray_cluster,
    claim_run_dir,
    report_outcome,
)

__all__ = ["main"]


def _federation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-supernodes", type=int, default=None,
                        help="virtual clients (default: 10, or the experiment file's)")
    parser.add_argument("--client-cpus", type=float, default=1.0,
                        help="CPUs per ClientApp (default 1: two clients in parallel on 2 cores)")
    parser.add_argument("--client-gpus", type=float, default=0.0,
                        help="GPUs per ClientApp, e.g. 0.5 (default 0: clients see no GPU)")
    parser.add_argument("--ray-address", default="", metavar="ADDR",
                        help="run the ClientApps on an existing Ray cluster: the head's HOST:PORT "
                        "(e.g. 127.0.0.1:6379) or ray://HOST:PORT; each node then hosts "
                        "its CPUs / --client-cpus actors (default: a private local Ray; "
                        "RAY_ADDRESS in the environment is not used)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="where run directories go when output-dir is not set (default ./runs)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="show only the progress bar and the result, not the Flower log")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedssl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one federated experiment on a private local SuperLink")
    run.add_argument("--experiment", type=Path, help="experiment TOML whose [base] table to use")
    run.add_argument("--overwrite", action="store_true",
                     help="clear an existing run directory of the same name first (refused "
                          "otherwise, so no earlier result is mixed into this run)")
    run.add_argument("overrides", nargs="*", metavar="key=value",
                     help="run-config overrides, e.g. strategy=fedyogi num-server-rounds=20")
    _federation_args(run)
    exp = sub.add_parser("experiment", help="run every variant of an experiment file")
    exp.add_argument("file", type=Path)
    exp.add_argument("overrides", nargs="*", metavar="key=value",
                     help="run-config overrides applied to every variant")
    exp.add_argument("--dry-run", action="store_true", help="list the variants and stop")
    again = exp.add_mutually_exclusive_group()
    again.add_argument("--report", type=Path, metavar="DIR",
                       help="rewrite the tables and plots of a finished (or interrupted) "
                       "experiment DIR; run nothing")
    again.add_argument("--continue", dest="continue_dir", type=Path, metavar="DIR",
                       help="continue the interrupted experiment DIR (of this file): keep its "
                       "completed variants, run the others, then rewrite the report")
    _federation_args(exp)
    hs = sub.add_parser("hyper-search", help="learn RepOpt scales centrally on a proxy dataset "
                        "(the constants of strategy=fedrepopt)")
    hs.add_argument("--model", required=True, help="RepOpt network, e.g. repopt-vgg-tiny")
    hs.add_argument("--out", type=Path, required=True, help="scales file to write (.pt)")
    hs.add_argument("--dataset", default="embedded-digits",
                    help="proxy dataset (default embedded-digits; the paper: cifar100)")
    hs.add_argument("--data-dir", default="", help="where the proxy dataset is on disk")
    hs.add_argument("--image-size", type=int, default=32)
    hs.add_argument("--epochs", type=int, default=10)
    hs.add_argument("--warmup-epochs", type=int, default=1)
    hs.add_argument("--batch-size", type=int, default=128)
    hs.add_argument("--lr", type=float, default=0.1)
    hs.add_argument("--weight-decay", type=float, default=4e-5)
    hs.add_argument("--seed", type=int, default=0)
    hs.add_argument("--max-steps", type=int, default=0, help="cap on total steps (0: none)")
    sb = sub.add_parser("select-best", help="score every kept round's global model of a run "
                        "(keep-round-models=true) and pick the best one")
    sb.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory of a finished "
                    "run (holds config.json and rounds/)")
    sb.add_argument("--metric", default=None, help="score to rank by (default: the first one "
                    "the task's selection evaluation returns, e.g. knn-accuracy)")
    sb.add_argument("--mode", choices=("max", "min"), default="max",
                    help="max: higher is better (default); min: lower is better")
    sb.add_argument("--every", type=int, default=1, metavar="K",
                    help="score every K-th kept round and the last one (default 1: all)")
    sb.add_argument("--rounds", type=_int_list("rounds"), default=None, metavar="R1,R2,...",
                    help="score only these kept rounds, e.g. 1,4,8 (not with --every)")
    sb.add_argument("--device", default=None,
                    help="where to evaluate, e.g. cpu or cuda (default: cuda when visible)")
    sb.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ft = sub.add_parser("finetune", help="fine-tune a run's global backbone with a linear head "
                        "on labelled data (CtP's protocol) and report test top-1/top-5")
    ft.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory of an "
                    "image-ssl, audio-ssl or video-ssl run (holds config.json)")
    ft.add_argument("--round", dest="weights", type=_weights, default="final",
                    metavar="final|best|N", help="which global model: final (default; a run "
                    "that stopped early: its last finished round), best (best-model.safetensors "
                    "of `fedssl select-best`), a kept round N, or 0 (the random init)")
    ft.add_argument("--mode", choices=("full", "linear"), default="full",
                    help="full: train the backbone too (default, the paper protocol); linear: "
                    "frozen backbone, head only")
    ft.add_argument("--label-fraction", type=float, default=1.0, metavar="F",
                    help="share of the train labels used, stratified and seeded, at least one "
                    "per class: 1 (default), 0.1, 0.01, any in (0, 1]")
    ft.add_argument("--epochs", type=int, default=10, help="epochs (default 10; CtP: 150); the "
                    "learning rate drops x0.1 after 40 %% and 80 %% of them")
    ft.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    ft.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    ft.add_argument("--weight-decay", type=float, default=None, metavar="WD",
                    help="SGD weight decay (default: 5e-4 for full, 0 for linear)")
    ft.add_argument("--seeds", type=_int_list("seeds"), default=[0], metavar="S1,S2,...",
                    help="one fine-tune per seed (labelled subset, head init, order, "
                    "augmentation), then mean and std (default 0)")
    ft.add_argument("--baseline", action="store_true", help="also fine-tune the run's random "
                    "initialisation with the same recipe, to show what the pretraining gained")
    ft.add_argument("--test-clips", type=int, default=10, metavar="K",
                    help="video: clips per test video whose logits are averaged (default 10)")
    ft.add_argument("--max-test-samples", type=int, default=0, metavar="N",
                    help="test on a seeded sample of N of the test split (default 0: all)")
    ft.add_argument("--device", default=None,
                    help="where to train, e.g. cpu or cuda (default: cuda when visible)")
    ft.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    vz = sub.add_parser("video-to-zip", help="convert a tree of videos into the same tree of "
                        "frame zips (CtP's format: one zip of JPEG frames per video)")
    vz.add_argument("src", type=Path, metavar="SRC", help="folder of videos (searched "
                    "recursively: .avi, .mp4, .mkv, .webm, .mov, .m4v)")
    vz.add_argument("dst", type=Path, metavar="DST", help="folder of zips: SRC/a/b.avi becomes "
                    "DST/a/b.zip; complete zips made with the same settings are kept")
    vz.add_argument("--quality", type=int, default=90, metavar="Q",
                    help="JPEG quality 1..100 (default 90)")
    vz.add_argument("--size", default="", metavar="WxH",
                    help="resize every frame to WxH pixels, e.g. 171x128 (default: keep)")
    vz.add_argument("--workers", type=int, default=1, metavar="N",
                    help="videos converted in parallel (default 1)")
    vz.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from fedssl.deploy.cli import add_deploy_parser

    add_deploy_parser(sub)
    return parser


def _int_list(what: str) -> Callable[[str], list[int]]:
    """An argparse type: a comma-separated list of integers >= 0 (``what``: rounds, seeds)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {what}, e.g. 0,1,4") from None
        if not values or min(values) < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give {what} >= 0, e.g. 0,1,4")
        return values

    return parse


def _weights(text: str) -> str | int:
    from fedssl.experiments.finetune import parse_weights

    try:
        return parse_weights(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}; give final, best or a round number, e.g. "
                                         "--round 8 (0: the random init)") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a batch scheduler, ``timeout``, a closed terminal): stop as on
    Ctrl-C, so that every process the command started ends with it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "hyper-search":
            return _cmd_hyper_search(args)
        if args.command == "select-best":
            return _cmd_select_best(args)
        if args.command == "finetune":
            return _cmd_finetune(args)
        if args.command == "video-to-zip":
            return _cmd_video_to_zip(args)
        if args.command == "deploy":
            from fedssl.deploy.cli import run_deploy

            return run_deploy(args)
        return _cmd_experiment(args)
    except ConfigError as err:
        print(f"fedssl: invalid configuration: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        name = f" ({stop.args[0]})" if isinstance(stop, Terminated) else ""
        print(f"fedssl: interrupted{name}; the SuperLink and every process it started were "
              "stopped (a run's checkpoint of its last finished round is kept: continue it "
              "with resume-from=<run directory>)", file=sys.stderr)
        return 128 + stop.signum if isinstance(stop, Terminated) else 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cmd_run(args: argparse.Namespace) -> int:
    from fedssl.experiments.spec import load_experiment

    spec = load_experiment(args.experiment) if args.experiment else None
    base = spec.base if spec else {}
    from fedssl.launch.overrides import resolve_config

    cfg = resolve_config(base, parse_overrides(args.overrides), default_root=args.runs_dir)
    federation = _federation(args, spec)
    try:
        federation.check_fits(cfg.min_available_nodes, cfg.min_train_nodes)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    claim_run_dir(cfg, overwrite=args.overwrite)

    print(f"fedssl: run directory {cfg.output_dir}", flush=True)
    with (LocalSuperLink(ray_address=federation.ray_address) as link,
          RoundProgress(cfg.num_server_rounds, quiet=args.quiet) as bar):
        outcome = link.run(cfg.to_run_config(), federation, on_line=bar.write,
                           on_progress=bar.update)
    return report_outcome(outcome)


def _federation(args: argparse.Namespace, spec) -> Federation:
    num = next((n for n in (args.num_supernodes, spec.num_supernodes if spec else None)
                if n is not None), 10)
    try:
        federation = Federation(num_supernodes=num, client_cpus=args.client_cpus,
                                client_gpus=args.client_gpus, ray_address=args.ray_address)
        # Before any process starts: an unreachable cluster would otherwise surface as a run
        # that hangs in ray.init for minutes.
        if federation.ray_address and not getattr(args, "dry_run", False):
            check_ray_cluster(federation.ray_address)
    except (ValueError, RayClusterUnreachable) as err:
        raise ConfigError(str(err)) from None
    return federation


def _cmd_experiment(args: argparse.Namespace) -> int:
    from fedssl.experiments.runner import run_experiment
    from fedssl.experiments.spec import load_experiment

    spec = load_experiment(args.file)
    if args.report:
        from fedssl.experiments.runner import rewrite_report

        rewrite_report(spec, args.report)
        return 0
    overrides = parse_overrides(args.overrides)
    return run_experiment(spec, overrides, federation=_federation(args, spec),
                          runs_dir=args.runs_dir, dry_run=args.dry_run, quiet=args.quiet,
                          continue_dir=args.continue_dir)


def _cmd_hyper_search(args: argparse.Namespace) -> int:
    from fedssl.clients.hyper_search import (
        HyperSearchSettings,
        plot_scales,
        run_hyper_search,
        save_scales,
        scale_summary,
    )
    from fedssl.datasets import DatasetNotFoundError

    try:
        settings = HyperSearchSettings(
            model=args.model, dataset=args.dataset, data_dir=args.data_dir,
            image_size=args.image_size, epochs=args.epochs, warmup_epochs=args.warmup_epochs,
            batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            seed=args.seed, max_steps=args.max_steps)
        result = run_hyper_search(settings)
    except (ValueError, DatasetNotFoundError) as err:
        raise ConfigError(str(err)) from None
    path = save_scales(args.out, settings, result)
    plot_scales(result["scales"], path.with_suffix(".png"))
    print(f"fedssl: hyper-search of {args.model} on {result['proxy']}: proxy test accuracy "
          f"{result['test-accuracy']:.4f} after {args.epochs} epochs "
          f"({result['train-time-s']:.1f}s)")
    for key, mean, low, high in scale_summary(result["scales"]):
        print(f"  {key:40s} mean {mean:7.4f}  min {low:7.4f}  max {high:7.4f}")
    print(f"fedssl: scales in {path} (plot {path.with_suffix('.png')})")
    return 0


def _cmd_select_best(args: argparse.Namespace) -> int:
    """Score the kept rounds, pick the best, write model-selection.csv/.png and
    best-model.safetensors.

    Exit codes: 0 done; 2 the run directory, metric or rounds are not valid (the message says
    what is); 130 interrupted (handled by :func:`main`).
    """
    from fedssl.experiments.selection import (
        SelectionError,
        default_metric,
        score_rounds,
        select_best,
        write_selection,
    )
    from fedssl.tracking.checkpoint import CheckpointError

    run_dir = args.run_dir.resolve()
    try:
        scores = score_rounds(run_dir, metric=args.metric, rounds=args.rounds, every=args.every,
                              progress=not args.quiet, device=args.device)
        metric = args.metric or default_metric(scores)
        best = select_best(scores, metric, mode=args.mode)
    except (FileNotFoundError, SelectionError, CheckpointError, ConfigError) as err:
        print(f"fedssl: select-best: {err}", file=sys.stderr)
        return 2
    paths = write_selection(run_dir, scores, metric, best)

    shown = scores.assign(best=["*" if r == best else "" for r in scores["round"]])
    print("\n" + shown.to_markdown(index=False, floatfmt=".4f"))
    score = float(scores.loc[scores["round"] == best, metric].iloc[0])
    last = int(scores["round"].max())
    last_score = float(scores.loc[scores["round"] == last, metric].iloc[0])
    print(f"\nfedssl: best round {best} by {metric} ({args.mode}): {score:.4f} "
          f"(round {last}: {last_score:.4f})")
    if best == 0:
        print("fedssl: no kept round beat the random initialisation")
    for kind, path in paths.items():
        print(f"  {kind:6s} {path}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune the chosen global model, write finetune/<weights>-<mode>-<fraction>.json and
    a row per result in finetune.csv, and print the results.

    Exit codes: 0 done; 2 the run directory, round or settings are not valid (the message says
    what is; nothing is written); 130 (143 on SIGTERM) interrupted, with every finished
    result already written.
    """
    import pandas as pd

    from fedssl.clients.finetune import FineTuneError, FineTuneSettings
    from fedssl.datasets import DatasetNotFoundError
    from fedssl.experiments.finetune import run_finetune
    from fedssl.experiments.selection import SelectionError
    from fedssl.tracking.checkpoint import CheckpointError

    run_dir = args.run_dir.resolve()

    def say(line: str) -> None:
        print(f"fedssl: finetune: {line}", file=sys.stderr, flush=True)

    try:
        settings = FineTuneSettings(
            mode=args.mode, label_fraction=args.label_fraction, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            test_clips=args.test_clips, max_test_samples=args.max_test_samples)
        document = run_finetune(run_dir, settings, weights=args.weights, seeds=args.seeds,
                                baseline=args.baseline, device=args.device,
                                log=None if args.quiet else say)
    except (FileNotFoundError, DatasetNotFoundError, FineTuneError, SelectionError,
            CheckpointError, ConfigError) as err:
        print(f"fedssl: finetune: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        name = f" ({stop.args[0]})" if isinstance(stop, Terminated) else ""
        print(f"fedssl: finetune interrupted{name}; every finished result is in "
              f"{run_dir / 'finetune.csv'}", file=sys.stderr)
        return 128 + stop.signum if isinstance(stop, Terminated) else 130

    rows = pd.DataFrame(document["results"])[
        ["weights", "round", "seed", "train-samples", "test-samples", "top1", "top5",
         "wall-s"]]
    print("\n" + rows.to_markdown(index=False, floatfmt=".4f"))
    fraction = f"{settings.label_fraction:g}"
    for label, mean in document["mean"].items():
        spread = (f" (std {mean['top1-std']:.4f} / {mean['top5-std']:.4f} over "
                  f"{mean['seeds']} seeds)" if mean["seeds"] > 1 else "")
        print(f"fedssl: finetune {label} ({settings.mode}, label fraction {fraction}): "
              f"top-1 {mean['top1']:.4f}, top-5 {mean['top5']:.4f}{spread}")
    print(f"  json   {document['path']}\n  csv    {document['csv']}")
    return 0


def _cmd_video_to_zip(args: argparse.Namespace) -> int:
    """Exit codes: 0 done (corrupt videos skipped are named in a warning); 2 SRC, the
    options or every video are not usable (the message says which)."""
    import warnings

    # Imported here: PyAV and PIL stay out of the other commands' start-up.
    from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError
    from fedssl.datasets.video.convert import convert_tree, parse_size

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            size = parse_size(args.size) if args.size else None
            report = convert_tree(args.src, args.dst, quality=args.quality, size=size,
                                  workers=args.workers, progress=not args.quiet)
        except (DatasetNotFoundError, CorruptDataError, ValueError, OSError) as err:
            print(f"fedssl: video-to-zip: {err}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"fedssl: video-to-zip: warning: {warning.message}", file=sys.stderr)
    print(f"fedssl: video-to-zip: {len(report.converted)} videos converted "
          f"({report.frames} frames, {report.seconds:.1f}s), {len(report.up_to_date)} "
          f"already up to date, {len(report.skipped)} skipped as corrupt; zips in {report.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
