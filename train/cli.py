"""Subcommands for datasets, training and evaluation (TensorFlow is imported inside commands)."""

from __future__ import annotations

import argparse
import json


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect datasets, write the built-in synthetic one")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = data_commands.add_parser("info", help="subjects, sessions, samples, rate, channels, classes")
    info.add_argument("data", help="dataset folder (recording format), HAPT folder or zip")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    add_dataset_options(info)
    info.set_defaults(func=cmd_data_info)

    synth = data_commands.add_parser("synth", help="write the built-in synthetic IMU dataset")
    synth.add_argument("--out", required=True, help="folder to create")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical files")
    synth.add_argument("--subjects", type=int, default=8, help="subjects, one session each")
    synth.add_argument("--minutes", type=float, default=12.0, help="per subject")
    synth.add_argument("--rate", type=int, choices=(50, 100), default=50, help="sample rate in Hz")
    synth.add_argument("--force", action="store_true", help="replace an existing folder")
    synth.set_defaults(func=cmd_data_synth)

    add_train_commands(commands)
    add_plot_command(commands)


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """Flags that give `dataset.toml` keys on the command line."""
    group = parser.add_argument_group("dataset options (override dataset.toml; defaults: its keys)")
    group.add_argument("--rate", dest="sample_rate_hz", type=float,
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


def dataset_overrides(args: argparse.Namespace) -> dict:
    keys = ("sample_rate_hz", "channels", "label_column", "time_column", "time_unit",
            "background_label", "subject_pattern")
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


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    from gesturekit.train.config import DISTRIBUTE, STRATEGIES
    from gesturekit.train.imbalance import LOSSES, WEIGHT_MODES

    train = commands.add_parser(
        "train", help="train a CNN-LSTM and write a run folder",
        description="Flags override the --config file, which overrides the defaults "
                    "(or the --quick budget).")
    train.add_argument("data", help="dataset folder (recording format), HAPT folder or zip")
    train.add_argument("--out", required=True, help="run folder to create")
    train.add_argument("--force", action="store_true", help="replace a non-empty --out")
    train.add_argument("--config", help="JSON or TOML file of training settings (default: none)")
    train.add_argument("--seed", type=int, help="seed of splits, weights and shuffling (default 0)")
    train.add_argument("--quick", action="store_true", help="a small budget for tests and demos")
    train.add_argument("--strategy", choices=STRATEGIES,
                       help="direct (default: the whole CNN-LSTM with class weights, best on HAPT) "
                            "or three-phase (sandbox, CNN head, frozen-CNN LSTM)")
    train.add_argument("--weights", choices=WEIGHT_MODES,
                       help="class-weight mode for every phase (default: inverse, and the two "
                            "below for three-phase)")
    train.add_argument("--cnn-weights", choices=WEIGHT_MODES,
                       help="phase-2 class weights (three-phase; default: --weights, else sqrt)")
    train.add_argument("--lstm-weights", choices=WEIGHT_MODES,
                       help="phase-3 class weights (three-phase; default: --weights, else inverse)")
    train.add_argument("--beta", type=float, help="beta of the effective class weights (default 0.999)")
    train.add_argument("--loss", choices=LOSSES, help="loss of every phase (default: crossentropy)")
    train.add_argument("--gamma", type=float, help="focal loss gamma (default 2)")
    train.add_argument("--augment", action="store_true",
                       help="jitter, scaling, 3-D rotation and time warp with default strengths")
    train.add_argument("--test-subjects", type=_subjects,
                       help="comma-separated, e.g. 2,4,9 (default: a seeded 20%% of the subjects)")
    train.add_argument("--val-subjects", type=_subjects,
                       help="comma-separated, from the rest (default: a seeded 20%% of them)")
    train.add_argument("--window", type=int, help="samples per window (default 128)")
    train.add_argument("--hop", type=int, help="samples between windows (default 64)")
    train.add_argument("--train-hop", type=int,
                       help="hop for cutting training windows only (default: --hop)")
    train.add_argument("--purity", type=float,
                       help="share of a window its label must cover (default 0.6)")
    train.add_argument("--skip-sandbox", action="store_true", help="do not run the phase-1 gate")
    train.add_argument("--distribute", choices=DISTRIBUTE, help="tf.distribute strategy (default: none)")
    add_dataset_options(train)
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a run (or a bundle with --stream) on any dataset")
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
        args.config, quick=args.quick, seed=args.seed, strategy=args.strategy,
        cnn_weights=args.cnn_weights or weights, lstm_weights=args.lstm_weights or weights,
        direct_weights=weights, beta=args.beta, loss=args.loss, gamma=args.gamma,
        test_subjects=args.test_subjects, val_subjects=args.val_subjects, window=args.window,
        hop=args.hop, train_hop=args.train_hop, purity=args.purity, distribute=args.distribute,
        sandbox=False if args.skip_sandbox else None,
        augment=AUGMENT_DEFAULTS if args.augment else None)
    train_run(args.data, args.out, cfg, dataset_overrides(args), force=args.force)
    print(f"run folder: {args.out} (report.md, metrics.json, model.keras)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gesturekit.train.evaluate import evaluate_command

    return evaluate_command(args.model, args.data, dataset_overrides(args), subjects=args.subjects,
                            out=args.out, as_json=args.json, stream=args.stream)


# --- plots ----------------------------------------------------------------------------------


def add_plot_command(commands: argparse._SubParsersAction) -> None:
    from gesturekit.device.backends import BACKENDS

    plot = commands.add_parser(
        "plot", help="draw a session with its labels (and a bundle's predictions and events)")
    plot.add_argument("recording", help="recording-format CSV, or a HAPT RawData/acc_expNN_userNN.txt")
    plot.add_argument("--model", help="model bundle: add per-window predictions and events "
                                       "(default: none, the session alone)")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--rate", type=float,
                      help="sample rate when not in dataset.toml (default: from the time column)")
    plot.add_argument("--backend", choices=BACKENDS,
                      help="interpreter (default: the first installed, in this order)")
    plot.add_argument("--int8", action="store_true", help="predict with the full-int8 model")
    plot.add_argument("--threshold", type=float,
                      help="smoothed confidence to announce, as for `run` (default: the bundle's)")
    plot.add_argument("--smoothing", type=int, help="average over the last K windows (default: the bundle's)")
    plot.add_argument("--min-consecutive", type=int,
                      help="windows in a row that must agree (default: the bundle's)")
    plot.add_argument("--refractory", type=float,
                      help="seconds of silence after an event (default: the bundle's)")
    plot.add_argument("--json", action="store_true", help="print the numbers behind the picture")
    plot.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from gesturekit.train.plots import plot_recording

    result = plot_recording(args.recording, args.out, args.model, rate_hz=args.rate,
                            backend=args.backend, int8=args.int8, postprocess={
                                "smoothing": args.smoothing, "threshold": args.threshold,
                                "min_consecutive": args.min_consecutive,
                                "refractory_s": args.refractory})
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        model = f", {len(result.window_ends)} windows, {len(result.events)} events" if args.model else ""
        print(f"wrote {args.out}: {result.samples} samples, {len(result.segments)} labelled "
              f"segments{model}")
    return 0
