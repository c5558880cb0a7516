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
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--subjects", type=int, default=8)
    synth.add_argument("--minutes", type=float, default=12.0, help="per subject")
    synth.add_argument("--rate", type=int, choices=(50, 100), default=50, help="sample rate in Hz")
    synth.add_argument("--force", action="store_true", help="replace an existing folder")
    synth.set_defaults(func=cmd_data_synth)


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """Flags that give `dataset.toml` keys on the command line."""
    group = parser.add_argument_group("dataset options (override dataset.toml)")
    group.add_argument("--rate", dest="sample_rate_hz", type=float, help="sample rate in Hz")
    group.add_argument("--channels", type=lambda s: s.split(","), help="channel columns, in order")
    group.add_argument("--label-column")
    group.add_argument("--time-column")
    group.add_argument("--time-unit", choices=("s", "ms"))
    group.add_argument("--background-label", help="label for unlabelled samples")
    group.add_argument("--subject-pattern", help="regex on the file path; group 1 is the subject")


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
