"""Subcommands for datasets, training and evaluation (TensorFlow is imported inside commands)."""

from __future__ import annotations

import argparse
import json
from functools import partial

from gesturekit.cli import epilog, postprocess_options, postprocess_overrides
from gesturekit.options import (
    nonnegative_float,
    nonnegative_int,
    open_unit,
    positive_float,
    positive_int,
    share,
)

# Progress lines are flushed, so that they reach a pipe (a log, `tee`, a test) as they happen.
print_progress = partial(print, flush=True)


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect datasets, write the built-in synthetic one")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = data_commands.add_parser(
        "info", help="subjects, sessions, samples, rate, channels, classes",
        epilog=epilog("gesturekit data info ../shared/data/hapt",
                      "gesturekit data info mydata --rate 100 --background-label idle --json"))
    info.add_argument("data", help="dataset folder (recording format), HAPT folder or zip")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    add_dataset_options(info)
    info.set_defaults(func=cmd_data_info)

    synth = data_commands.add_parser(
        "synth", help="write the built-in synthetic IMU dataset",
        epilog=epilog("gesturekit data synth --out demo/data",
                      "gesturekit data synth --out small --subjects 4 --minutes 3 --seed 1"))
    synth.add_argument("--out", required=True, help="folder to create")
    synth.add_argument("--seed", type=nonnegative_int, default=0,
                       help="the same seed gives byte-identical files")
    synth.add_argument("--subjects", type=positive_int, default=8, help="subjects, one session each")
    synth.add_argument("--minutes", type=positive_float, default=12.0, help="per subject")
    synth.add_argument("--rate", type=int, choices=(50, 100), default=50, help="sample rate in Hz")
    synth.add_argument("--force", action="store_true", help="replace an existing folder")
    synth.set_defaults(func=cmd_data_synth)

    add_train_commands(commands)
    add_compare_command(commands)
    add_plot_command(commands)


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """Flags that give `dataset.toml` keys on the command line."""
    group = parser.add_argument_group("dataset options (override dataset.toml; defaults: its keys)")
    group.add_argument("--rate", dest="sample_rate_hz", type=positive_float,
                       help="sample rate in Hz (default: from the time column)")
    group.add_argument("--channels", type=lambda s: s.split(","),
                       help="channel columns, in order (default: every column but time and label)")
    group.add_argument("--label-column", help="per-sample label column (default: label)")
    group.add_argument("--time-column", help="time column (default: none)")
    group.add_argument("--time-unit", choices=("s", "ms"), help="unit of the time column (default: s)")
    group.add_argument("--background-label",
                       help="label for unlabelled samples (default: none; they are left out)")
    group.add_argument("--subject-pattern", help="regex on the file path; group 1 is the subject "
                                                 "(default: none; every session stands alone)")
    group.add_argument("--reference-label",
                       help="the pose every session starts in, whose gravity sets the session's "
                            "frame (default: none; HAPT: STANDING)")
    group.add_argument("--reference-seconds", type=positive_float,
                       help="seconds of that pose that set the frame (default 3)")


def dataset_overrides(args: argparse.Namespace) -> dict:
    keys = ("sample_rate_hz", "channels", "label_column", "time_column", "time_unit",
            "background_label", "subject_pattern", "reference_label", "reference_seconds")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def cmd_data_info(args: argparse.Namespace) -> int:
    from gesturekit.train.datasets import dataset_info, load_dataset

    info = dataset_info(load_dataset(args.data, **dataset_overrides(args)))
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"dataset     {info['dataset']}")
    print(f"subjects    {len(info['subjects'])}: {', '.join(info['subjects'])}")
    print(f"sessions    {info['sessions']}")
    print(f"samples     {info['samples']:,} per channel "
          f"({info['samples'] / info['sample_rate_hz'] / 60:.1f} min at {info['sample_rate_hz']:g} Hz)")
    print(f"channels    {', '.join(info['channels'])}")
    print(f"unlabelled  {info['unlabelled_samples']:,} samples")
    if info["reference_label"]:
        print(f"reference   the first {info['reference_seconds']:g} s of {info['reference_label']} in "
              "each session set its frame")
    if not any(info["classes"].values()):
        print("\nclasses     none labelled (no label values; set --label-column or "
              "--background-label)")
        return 0
    width = max(len(name) for name in info["classes"])
    print(f"\n{'class':<{width}}  {'samples':>9}  {'segments':>8}")
    for name, count in info["classes"].items():
        print(f"{name:<{width}}  {count:>9,}  {info['segments'][name]:>8}")
    print(f"\nimbalance   {info['imbalance_ratio']:.1f}x (largest class / smallest)")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from gesturekit.train.synth import SynthConfig, write_synthetic_dataset

    cfg = SynthConfig(seed=args.seed, subjects=args.subjects, minutes=args.minutes,
                      sample_rate_hz=args.rate)
    path = write_synthetic_dataset(args.out, cfg, force=args.force)
    print(f"wrote {path} ({cfg.subjects} subjects, {cfg.minutes:g} min each at {cfg.sample_rate_hz} Hz)")
    return 0


# --- training and evaluation ----------------------------------------------------------------


def _subjects(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def training_data_options() -> argparse.ArgumentParser:
    """The settings file, budget, split, window and dataset options that `train` and `compare`
    share (argparse `parents=`); `compare` gives them to every variant."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--config", help="JSON or TOML file of training settings (default: none)")
    options.add_argument("--quick", action="store_true", help="a small budget for tests and demos")
    options.add_argument("--test-subjects", type=_subjects,
                         help="comma-separated, e.g. 2,4,9 (default: a seeded 20%% of the subjects)")
    options.add_argument("--val-subjects", type=_subjects,
                         help="comma-separated, from the rest (default: a seeded 20%% of them)")
    options.add_argument("--window", help="window length, samples (128) or seconds (2.5s); default: "
                                          "the median segment of the dataset's rarest class")
    options.add_argument("--hop", help="samples or seconds between windows (default: half the window)")
    options.add_argument("--train-hop", help="hop for cutting training windows only (default: --hop)")
    options.add_argument("--purity", type=share,
                         help="share of a window its label must cover (default 0.6)")
    options.add_argument("--skip-sandbox", action="store_true", help="do not run the phase-1 gate")
    add_dataset_options(options)
    return options


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    from gesturekit.train.config import DISTRIBUTE, STRATEGIES
    from gesturekit.train.imbalance import LOSSES, WEIGHT_MODES

    train = commands.add_parser(
        "train", help="train a CNN-LSTM and write a run folder", parents=[training_data_options()],
        description="Flags override the --config file, which overrides the defaults "
                    "(or the --quick budget).",
        epilog=epilog("gesturekit train ../shared/data/hapt --out runs/hapt --test-subjects 2,4,9",
                      "gesturekit train mydata --out runs/small --folds 4 --window 2.5s",
                      other="; 3 the phase-1 sandbox gate failed (the model cannot learn a small "
                            "balanced subset)"))
    train.add_argument("data", help="dataset folder (recording format), HAPT folder or zip")
    train.add_argument("--out", required=True, help="run folder to create")
    train.add_argument("--force", action="store_true", help="replace a non-empty --out")
    train.add_argument("--seed", type=nonnegative_int,
                       help="seed of splits, weights and shuffling (default 0)")
    train.add_argument("--strategy", choices=(*STRATEGIES, "auto"),
                       help="direct (default: the whole CNN-LSTM with class weights, best on HAPT) "
                            "or three-phase (sandbox, CNN head, frozen-CNN LSTM); auto: the one "
                            "that wins `compare` on --folds (default 3) of the training subjects")
    train.add_argument("--weights", choices=WEIGHT_MODES,
                       help="class-weight mode for every phase (default: inverse, and the two "
                            "below for three-phase)")
    train.add_argument("--cnn-weights", choices=WEIGHT_MODES,
                       help="phase-2 class weights (three-phase; default: --weights, else sqrt)")
    train.add_argument("--lstm-weights", choices=WEIGHT_MODES,
                       help="phase-3 class weights (three-phase; default: --weights, else inverse)")
    train.add_argument("--beta", type=open_unit, help="beta of the effective class weights (default 0.999)")
    train.add_argument("--loss", choices=LOSSES, help="loss of every phase (default: crossentropy)")
    train.add_argument("--gamma", type=nonnegative_float, help="focal loss gamma (default 2)")
    train.add_argument("--augment", action="store_true",
                       help="jitter, scaling, 3-D rotation and time warp with default strengths")
    train.add_argument("--mixup", type=nonnegative_float, metavar="ALPHA",
                       help="mixup strength: each training window blended with another, "
                            "lambda ~ Beta(ALPHA, ALPHA); 0 turns it off (default 0.4)")
    train.add_argument("--folds", type=nonnegative_int,
                       help="K > 1: leave-subjects-out cross-validation over the non-test subjects "
                            "(each fold reported), then the model trained on all of them for the "
                            "epochs the folds chose; K+1 trainings, for small datasets (default off)")
    train.add_argument("--distribute", choices=DISTRIBUTE, help="tf.distribute strategy (default: none)")
    train.add_argument("--no-reference-frame", action="store_true",
                       help="train on sessions as they are, not turned into the frame of the "
                            "dataset's reference pose (its --reference-label)")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a run (or a bundle with --stream) on any dataset",
        epilog=epilog("gesturekit evaluate runs/hapt ../shared/data/hapt --subjects 2,4 --out eval",
                      "gesturekit evaluate bundle ../shared/data/hapt --stream --json"))
    evaluate.add_argument("model", help="run folder, or model bundle (with --stream)")
    evaluate.add_argument("data", help="dataset folder (recording format), HAPT folder or zip")
    evaluate.add_argument("--subjects", type=_subjects, help="only these subjects (default all)")
    evaluate.add_argument("--out", help="folder for report.md, plots and scores.json (default: none, "
                                        "print only)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.add_argument("--stream", action="store_true",
                          help="replay sessions sample by sample through the bundle's runner")
    add_dataset_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)


AUGMENT_DEFAULTS = {"jitter": 0.05, "scaling": 0.1, "rotation_deg": 15.0, "time_warp": 0.1}


def cmd_train(args: argparse.Namespace) -> int:
    from gesturekit.train.config import build_config
    from gesturekit.train.trainer import train_run

    weights = args.weights
    cfg = build_config(
        args.config, quick=args.quick, seed=args.seed,
        strategy=None if args.strategy == "auto" else args.strategy,
        cnn_weights=args.cnn_weights or weights, lstm_weights=args.lstm_weights or weights,
        direct_weights=weights, beta=args.beta, loss=args.loss, gamma=args.gamma,
        test_subjects=args.test_subjects, val_subjects=args.val_subjects, window=args.window,
        hop=args.hop, train_hop=args.train_hop, purity=args.purity, distribute=args.distribute,
        folds=args.folds,
        sandbox=False if args.skip_sandbox else None,
        reference_frame=False if args.no_reference_frame else None,
        augment={**(AUGMENT_DEFAULTS if args.augment else {}),
                 **({} if args.mixup is None else {"mixup_alpha": args.mixup})} or None)
    if args.strategy == "auto":
        from gesturekit.train.compare import train_auto as train_run
    train_run(args.data, args.out, cfg, dataset_overrides(args), force=args.force,
              progress=print_progress)
    print(f"run folder: {args.out} (report.md, metrics.json, model.keras)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gesturekit.train.evaluate import evaluate_command

    return evaluate_command(args.model, args.data, dataset_overrides(args), subjects=args.subjects,
                            out=args.out, as_json=args.json, stream=args.stream)


# --- compare --------------------------------------------------------------------------------


def add_compare_command(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", help="train strategies or configs over seeds (and folds); say which one the data supports",
        parents=[training_data_options()],
        description="Every variant x seed [x fold] is one `train` run. Settings: the defaults (or "
                    "--quick), then --config, then the flags below, then each variant's own.",
        epilog=epilog("gesturekit compare mydata --out cmp --seeds 5 --apply best.json",
                      "gesturekit compare mydata --out cmp --strategies direct,wide.toml --workers 2",
                      other="; 3 every run failed the phase-1 sandbox gate; 1 every run "
                            "failed, for a reason other than the input (see compare.md)"))
    compare.add_argument("data", help="dataset folder (recording format), HAPT folder or zip")
    compare.add_argument("--strategies", default="direct,three-phase",
                         help="comma-separated strategy names and/or .json/.toml config files; the "
                              "first is the baseline (default: direct,three-phase)")
    compare.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 per variant (default 3)")
    compare.add_argument("--folds", type=nonnegative_int,
                         help="each run is `train --folds K`; compare its K fold scores on the "
                              "non-test subjects (default: off; compare test macro-F1)")
    compare.add_argument("--out", required=True,
                         help="compare folder (created, or reopened to finish an earlier compare)")
    compare.add_argument("--apply", metavar="FILE.json",
                         help="write the recommended variant's settings for `train --config`")
    compare.add_argument("--workers", type=positive_int, default=1,
                         help="local worker processes, one TensorFlow thread each (default 1)")
    compare.add_argument("--cluster", metavar="ADDRESS",
                         help="run each run as a task on a Ray cluster: ray://HOST:10001, "
                              "HOST:6379 or auto (needs gesturekit[cluster])")
    compare.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from gesturekit.errors import UserError
    from gesturekit.train.compare import compare, every_run_failed, parse_variants, write_winner_config
    from gesturekit.train.config import build_config

    if args.cluster and args.workers != 1:
        raise UserError(f"--workers {args.workers}: not with --cluster (the cluster's slots decide)")
    if args.apply and not args.apply.endswith(".json"):
        raise UserError(f"--apply {args.apply}: expected a .json file name")
    variants = parse_variants(args.strategies)
    base = build_config(args.config, quick=args.quick, test_subjects=args.test_subjects,
                        val_subjects=args.val_subjects, window=args.window, hop=args.hop,
                        train_hop=args.train_hop, purity=args.purity, folds=args.folds,
                        sandbox=False if args.skip_sandbox else None)
    state = compare(args.data, args.out, base, variants, list(range(args.seeds)),
                    dataset_overrides(args), workers=args.workers, cluster=args.cluster,
                    progress=print_progress)
    print(f"\n{state['recommendation']['text']}\n\ntable: {args.out}/compare.md (compare.json, "
          "compare.png)")
    failed = every_run_failed(state, args.out)
    if failed:
        raise failed
    if args.apply:
        write_winner_config(state, base, variants, args.apply)
        print(f"wrote {args.apply}: {state['recommendation']['variant']}'s settings "
              f"(gesturekit train DATA --config {args.apply} --out RUN)")
    return 0


# --- plots ----------------------------------------------------------------------------------


def add_plot_command(commands: argparse._SubParsersAction) -> None:
    from gesturekit.device.core.backends import BACKENDS

    plot = commands.add_parser(
        "plot", help="draw a session with its labels (and a bundle's predictions and events)",
        parents=[postprocess_options()],
        epilog=epilog("gesturekit plot mydata/s01_session1.csv --out s01.png",
                      "gesturekit plot ../shared/data/hapt/RawData/acc_exp02_user01.txt "
                      "--model bundle --out exp02.pdf"))
    plot.add_argument("recording", help="recording-format CSV, or a HAPT RawData/acc_expNN_userNN.txt")
    plot.add_argument("--model", help="model bundle: add per-window predictions and events "
                                       "(default: none, the session alone)")
    plot.add_argument("--out", required=True,
                      help="image file to write: .png, or another format matplotlib writes "
                           "(.pdf, .svg, ...)")
    plot.add_argument("--rate", type=positive_float,
                      help="sample rate when not in dataset.toml (default: from the time column)")
    plot.add_argument("--backend", choices=BACKENDS,
                      help="interpreter (default: the first installed, in this order)")
    plot.add_argument("--int8", action="store_true", help="predict with the full-int8 model")
    plot.add_argument("--json", action="store_true", help="print the numbers behind the picture")
    plot.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from gesturekit.train.plots import plot_recording

    result = plot_recording(args.recording, args.out, args.model, rate_hz=args.rate,
                            backend=args.backend, int8=args.int8,
                            postprocess=postprocess_overrides(args))
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        model = f", {len(result.window_ends)} windows, {len(result.events)} events" if args.model else ""
        print(f"wrote {args.out}: {result.samples} samples, {len(result.segments)} labelled "
              f"segments{model}")
    return 0
