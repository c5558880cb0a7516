"""Subcommands for the board side: run, simulate, record (no TensorFlow anywhere below)."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import time
from pathlib import Path

from gesturekit.cli import epilog, postprocess_options, postprocess_overrides
from gesturekit.errors import UserError
from gesturekit.options import (
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
    to_samples,
)

GAP_SAMPLES = 5  # the shortest --gap, in samples at the model's rate


def add_commands(commands: argparse._SubParsersAction) -> None:
    _add_run_command(commands)
    _add_simulate_command(commands)
    _add_record_command(commands)
    _add_emulate_command(commands)


def _add_run_command(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="classify a live serial stream and print gesture events",
        parents=[postprocess_options()],
        epilog=epilog("gesturekit run --port /dev/ttyACM0 --model bundle",
                      "gesturekit run --match 2e8a:000a --model bundle --int8 --json --duration 60",
                      done=" (--duration ended, or Ctrl-C)",
                      bad=", no sample arrived, or the board stayed away past "
                          "--reconnect-timeout"))
    run.add_argument("--port", help="serial port or pyserial URL (/dev/ttyACM0, COM3, "
                                    "socket://host:port, ...; default: the --match board)")
    run.add_argument("--model", required=True, help="model bundle folder (from `gesturekit export`)")
    shown = run.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON object per line")
    shown.add_argument("--view", action="store_true", help="full-screen live view (the default "
                       "when stdout is a terminal and neither --json nor --windows is given)")
    shown.add_argument("--no-view", action="store_true", help="readable lines even on a terminal")
    run.add_argument("--trace", type=lambda s: [c for c in s.split(",") if c],
                     help="channels to trace in the view, e.g. ax,gz (default: |acc| and |gyro|)")
    run.add_argument("--duration", type=nonnegative_float, help="stop after this many seconds")
    run.add_argument("--backend", choices=("ai_edge_litert", "tflite_runtime", "onnxruntime",
                                           "tflite_micro"),
                     help="interpreter (default: the first installed of these, in this order; "
                          "tflite_micro runs the int8 model exactly as a board's TFLM does)")
    run.add_argument("--int8", action="store_true",
                     help="run the full-int8 TFLite model (default: the float model)")
    run.add_argument("--hop", metavar="HOP",
                     help="samples (8) or seconds (0.16s) between decisions (default: the "
                          "bundle's, the hop it was calibrated at; post-processing times are in "
                          "seconds and hold at any hop)")
    run.add_argument("--threads", type=positive_int, default=1, help="interpreter threads (default 1)")
    run.add_argument("--baud", type=positive_int, default=115200,
                     help="serial baud rate (ignored by USB CDC)")
    run.add_argument("--rate", type=positive_float, help="the stream's sample rate in Hz (default: "
                                                "measured over the first 2 s)")
    run.add_argument("--match", help="find the board by USB VID:PID (hex) or description, "
                                     "also after it comes back")
    run.add_argument("--windows", action="store_true",
                     help="also print every window's top label and probabilities")
    _add_web_option(run, "the signal, class probabilities, state, events and health")
    waits = run.add_argument_group("deadlines")
    waits.add_argument("--first-line-timeout", type=positive_float, default=5.0,
                       help="seconds to wait for a valid line after connecting (default 5)")
    waits.add_argument("--reconnect-timeout", type=nonnegative_float, default=10.0,
                       help="seconds to keep reopening a vanished port, then exit 2 (default 10; "
                            "0: stop when the port goes, exit 0)")
    waits.add_argument("--gap", type=positive_float, default=1.0,
                       help="a silence this long restarts the windows; at least 5 samples at "
                            "the model's rate (default 1 s)")
    run.set_defaults(func=cmd_run)


def _add_simulate_command(commands: argparse._SubParsersAction) -> None:
    sim = commands.add_parser(
        "simulate", help="play a recording into a pseudo-terminal like a board",
        epilog=epilog("gesturekit simulate demo/data/s02_session1.csv --pty --speed 4",
                      "gesturekit simulate ../shared/data/hapt/RawData/acc_exp02_user01.txt --pty "
                      "--garbage 0.02 --disconnect-after 30",
                      done=" (the recording played, or Ctrl-C)"))
    sim.add_argument("recording", help="recording-format CSV, or a HAPT RawData/acc_expNN_userNN.txt")
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="create a pseudo-terminal; its path "
                                                          "is the first line printed")
    where.add_argument("--port", help="write to this pyserial port or URL instead")
    sim.add_argument("--link", help="with --pty: keep a symlink to the current pty here")
    sim.add_argument("--speed", type=positive_float, default=1.0, help="times real rate (default 1)")
    sim.add_argument("--rate", type=positive_float, help="sample rate of the recording, when not in "
                                                "its dataset.toml (default: from its time column)")
    sim.add_argument("--garbage", type=probability, default=0.0,
                     help="probability of a junk line before each sample")
    sim.add_argument("--drop", type=probability, default=0.0, help="probability of leaving a sample out")
    sim.add_argument("--cut-lines", action="store_true", help="write bytes in pieces that "
                                                              "split lines")
    sim.add_argument("--disconnect-after", type=positive_float, help="close the port after S seconds and "
                                                            "open a new one (a pulled cable)")
    sim.add_argument("--reconnect-pause", type=nonnegative_float, default=0.5,
                     help="seconds between closing the port and opening the new one (default 0.5)")
    sim.add_argument("--no-header", action="store_true", help="send no header line")
    sim.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    sim.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the fault injection")
    sim.add_argument("--stats", help="write what was sent (lines, garbage, drops) as JSON here")
    sim.add_argument("--wait-reader", type=positive_float, default=60.0,
                     help="seconds to wait for a program to open the pty (default 60)")
    sim.set_defaults(func=cmd_simulate)


def _add_record_command(commands: argparse._SubParsersAction) -> None:
    rec = commands.add_parser(
        "record", help="record a labelled session from a board",
        epilog=epilog("gesturekit record --port /dev/ttyACM0 --label idle --labels walk,jump "
                      "--out mydata --seconds 120",
                      "gesturekit record --port socket://board:7000 --label punch --out mydata "
                      "--samples 5000 --channels ax,ay,az",
                      done=" (--seconds or --samples reached, or Ctrl-C)",
                      other="; whatever the code, the samples recorded are kept, except a "
                            "session too short to measure its rate (give --rate), which is removed"))
    rec.add_argument("--port", required=True, help="serial port or pyserial URL")
    rec.add_argument("--label", required=True, help="label of the samples (key 0 returns to it)")
    rec.add_argument("--labels", type=lambda s: [x for x in s.split(",") if x], default=[],
                     help="labels for keys 1..9, e.g. walk,jump: type a digit to switch")
    rec.add_argument("--out", required=True, help="dataset folder (created; dataset.toml written)")
    rec.add_argument("--session", help="session file name (default: session_<date>_<time>)")
    stop = rec.add_mutually_exclusive_group()
    stop.add_argument("--seconds", type=positive_float, help="record this long (default: until Ctrl-C)")
    stop.add_argument("--samples", type=positive_int, help="record this many samples (default: until Ctrl-C)")
    rec.add_argument("--channels", type=lambda s: s.split(","),
                     help="channel names when the board sends no header (default: the header's)")
    rec.add_argument("--rate", type=positive_float, help="sample rate in Hz (default: measured)")
    rec.add_argument("--baud", type=positive_int, default=115200,
                     help="serial baud rate (ignored by USB CDC)")
    _add_web_option(rec, "the signal, a button per label, samples per label, a guided mode")
    rec.set_defaults(func=cmd_record)


def _add_emulate_command(commands: argparse._SubParsersAction) -> None:
    emu = commands.add_parser(
        "emulate", help="build the firmware for a Cortex-M4 and run it on an emulated board "
                        "(QEMU); its serial port is a pty",
        epilog=epilog("gesturekit emulate demo/bundle --duration 60",
                      "gesturekit emulate --firmware stream --recording demo/data/s02_session1.csv"))
    emu.add_argument("bundle", nargs="?", help="model bundle (for --firmware classifier)")
    emu.add_argument("--firmware", choices=("classifier", "stream"), default="classifier",
                     help="classifier: feed it samples (`gesturekit simulate REC --port PTY`) and "
                          "it prints events; stream: it plays --recording like an IMU for "
                          "`gesturekit run --port PTY` (default classifier)")
    emu.add_argument("--recording", help="with --firmware stream: recording-format CSV or a HAPT "
                                         "RawData/acc_expNN_userNN.txt, compiled into flash")
    emu.add_argument("--rate", type=positive_float, help="sample rate of the recording, when not in its "
                                                "dataset.toml")
    emu.add_argument("--kernels", choices=("cmsis_nn", "reference"), default="cmsis_nn",
                     help="TFLM kernels (default cmsis_nn)")
    emu.add_argument("--release", action="store_true",
                     help="TFLM without error strings and assertions (about 25 KB less flash)")
    emu.add_argument("--tflm", help="TensorFlow Lite Micro tree with tflm.mk (default "
                                    "../shared/third_party/tflite-micro beside the repository)")
    emu.add_argument("--windows", action="store_true",
                     help="classifier: also print every window's probabilities and int8 outputs")
    emu.add_argument("--duration", type=nonnegative_float, help="stop after this many seconds")
    emu.set_defaults(func=cmd_emulate)


def _add_web_option(command: argparse.ArgumentParser, shows: str) -> None:
    # "" (the flag alone) is device.live.web's default address; `gesturekit -h` imports no numpy.
    command.add_argument("--web", nargs="?", const="", metavar="[HOST:]PORT",
                         help=f"a live page in the browser ({shows}); the URL is printed "
                              "(default: none; the flag alone: 127.0.0.1:8765, localhost only "
                              "unless you name another host)")


def _start_web(address: str, hello: dict):
    """The page's server, started; its URL on stderr (stdout may be --json lines)."""
    from gesturekit.device.live.web import WebServer

    server = WebServer(address, hello)
    print(f"live page: {server.url}", file=sys.stderr, flush=True)
    return server


def _on_signals(handler) -> None:
    """Ctrl-C and SIGTERM end the command cleanly (summary, exit 0) instead of a traceback."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())


def cmd_run(args: argparse.Namespace) -> int:
    # The runner is one thread. Left alone, numpy's OpenBLAS starts a thread per core at import
    # that spins for about 0.1 s of CPU: more than ten seconds of 100 Hz stream cost the runner.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from gesturekit.device.core.backends import Classifier, choose_backend
    from gesturekit.device.core.bundle import load_bundle
    from gesturekit.device.core.postprocess import PostprocessConfig
    from gesturekit.device.live.runner import Runner, RunOptions

    port = _run_port(args)
    bundle = load_bundle(args.model)
    if args.hop is not None:  # every part below (windows, detector, views) reads bundle.hop
        bundle.hop = to_samples(args.hop, bundle.sample_rate_hz, "--hop")
        calibrated_at = bundle.calibration.get("hop")
        if calibrated_at and calibrated_at != bundle.hop:
            print(f"gesturekit run: warning: --hop {bundle.hop} samples; {args.model} was "
                  f"calibrated at {calibrated_at} (its times hold, its figures were measured "
                  "there; calibrate a copy at this hop: export --hop, then calibrate)",
                  file=sys.stderr)
    # Boards send in bursts (USB packets, batched lines): a silence of a few samples is normal,
    # and a shorter --gap would restart the windows so often that none completes.
    shortest_gap = GAP_SAMPLES / bundle.sample_rate_hz
    if args.gap < shortest_gap:
        raise UserError(f"--gap {args.gap:g}: shorter than {GAP_SAMPLES} samples at the model's "
                        f"{bundle.sample_rate_hz:g} Hz; expected at least {shortest_gap:g} s")
    backend, kind = choose_backend(bundle, args.backend, args.int8)
    classifier = Classifier(bundle, backend, kind, threads=args.threads)
    postprocess = PostprocessConfig.for_bundle(bundle, postprocess_overrides(args))
    options = RunOptions(port=port, baudrate=args.baud, duration_s=args.duration,
                         first_line_timeout_s=args.first_line_timeout,
                         reconnect_timeout_s=args.reconnect_timeout, gap_s=args.gap,
                         match=args.match, print_windows=args.windows, rate_hz=args.rate)
    output = _run_output(args, bundle, postprocess, port)
    runner = Runner(bundle, classifier, postprocess, options, output)
    if args.web is not None:
        output.follow(runner)
    _on_signals(runner.stop)
    signal.signal(signal.SIGUSR1, lambda *_: runner.request_frame())
    # What is loaded by now lives as long as the process; frozen, the cyclic garbage collector
    # stops walking it on every collection (measured: 15% of the runner's CPU otherwise).
    gc.freeze()
    try:
        summary = runner.run()
    finally:
        output.close()  # the terminal comes back even when the run fails
    # The summary is printed either way; the exit code says whether the run did its job. With
    # --reconnect-timeout 0 the stream's end is the run's chosen end (a recording played in).
    if summary["ended"] == "disconnected" and args.reconnect_timeout > 0:
        raise UserError(f"port {port}: gone for longer than --reconnect-timeout "
                        f"{args.reconnect_timeout:g} s; is the board still plugged in?")
    if not summary["samples"] and summary["ended"] == "duration" and args.duration != 0:
        raise UserError(f"port {port}: no sample line within --duration {args.duration:g} s; check "
                        "the baud rate (--baud) and that the board streams samples")
    return 0


def _run_port(args: argparse.Namespace) -> str:
    """--port, or the port of the board that --match finds."""
    from gesturekit.device.live.ports import find_port

    if args.port is not None:
        return args.port
    if not args.match:
        raise UserError("give --port PORT (or --match VID:PID to find the board)")
    port = find_port(args.match)
    if port is None:
        raise UserError(f"--match {args.match}: no serial port matches; is the board "
                        "plugged in? (list ports with `python -m serial.tools.list_ports`)")
    return port


def _run_output(args: argparse.Namespace, bundle, postprocess, port: str):
    """Where `run` shows what it decides: the live view on a terminal (unless --json, --no-view
    or --windows), else lines; a page in the browser as well with --web."""
    from gesturekit.device.live.runner import Printer

    output = None
    if args.view or not (args.json or args.no_view or args.windows or not sys.stdout.isatty()):
        try:
            from gesturekit.device.live.view import LiveView
        except ModuleNotFoundError as e:  # a --no-deps install (tflite-runtime venv): no rich
            if (e.name or "").split(".")[0] != "rich":
                raise
            if args.view:
                raise UserError(f"--view needs the rich package ({e}); "
                                "`pip install rich`, or drop --view") from None
            print(f"warning: no live view ({e}); printing lines instead (`pip install rich` "
                  "for the view)", file=sys.stderr, flush=True)
        else:
            output = LiveView(bundle, postprocess, port, trace=args.trace)
    if output is None:
        output = Printer(args.json)
    if args.web is not None:
        from gesturekit.device.live.web import WebOutput, run_hello

        output = WebOutput(output, _start_web(args.web, run_hello(bundle, postprocess, port)))
    return output


def cmd_simulate(args: argparse.Namespace) -> int:
    from gesturekit.device.core.recording import load_session
    from gesturekit.device.live.simulate import PortSink, PtySink, SimOptions, SimStats, play, write_stats

    session = load_session(args.recording, args.rate)
    opts = SimOptions(speed=args.speed, garbage=args.garbage, drop=args.drop,
                      cut_lines=args.cut_lines, disconnect_after_s=args.disconnect_after,
                      reconnect_pause_s=args.reconnect_pause,
                      header=not args.no_header, loop=args.loop, seed=args.seed,
                      wait_reader_s=args.wait_reader)
    sink = PtySink(args.link) if args.pty else PortSink(args.port)
    shown = []

    def announce(path: str) -> None:
        if not shown or shown[-1] != path:
            print(path, flush=True)
            shown.append(path)

    def interrupt() -> None:
        raise KeyboardInterrupt

    _on_signals(interrupt)
    stats = SimStats()
    try:
        play(session, sink, opts, stats, announce)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
        write_stats(args.stats, stats)
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    from gesturekit.device.emulator.firmware import build_firmware
    from gesturekit.device.emulator.qemu import BoardPort, Qemu

    if args.firmware == "classifier" and args.recording:
        raise UserError("--recording is for --firmware stream; feed the classifier with "
                        "`gesturekit simulate REC --port PTY`")
    build = build_firmware(args.firmware, args.bundle, args.recording, args.kernels, args.tflm,
                           rate_hz=args.rate, release=args.release)
    stopped = []
    _on_signals(lambda: stopped.append(True))
    with Qemu(build.elf) as qemu:
        end = time.monotonic() + args.duration if args.duration is not None else float("inf")
        if args.firmware == "stream":  # the reader is `gesturekit run`; we only keep QEMU alive
            print(qemu.pty, flush=True)
            while not stopped and time.monotonic() < end and qemu.process.poll() is None:
                time.sleep(0.1)
            return 0
        board = BoardPort(qemu.pty)
        try:
            banner = board.wait_ready()
            print(qemu.pty, flush=True)  # only now: nothing sent to the board is lost
            print(banner, flush=True)
            if args.windows:
                board.write(b"\n#!windows\n")  # the board drops its first line, as the runner does
            while not stopped and time.monotonic() < end and qemu.process.poll() is None:
                line = board.readline(min(0.2, max(0.0, end - time.monotonic())))
                if line is not None:
                    print(line, flush=True)
        finally:
            board.close()
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from gesturekit.device.live.record import KeyReader, Recorder, RecordOptions, check_labels

    check_labels(args.label, args.labels)  # before the port opens and the terminal changes
    if args.labels and len(args.labels) > 9:
        raise UserError(f"--labels: at most 9 labels (keys 1..9), got {len(args.labels)}")
    session = args.session or time.strftime("session_%Y%m%d_%H%M%S")
    if "/" in session or session.startswith("."):
        raise UserError(f"--session {session}: expected a plain file name")
    opts = RecordOptions(port=args.port, out=Path(args.out), label=args.label, labels=args.labels,
                         session=session, seconds=args.seconds, samples=args.samples,
                         channels=args.channels, rate_hz=args.rate, baudrate=args.baud)
    server = None
    if args.web is not None:  # before the terminal goes to single keys: it may fail
        server = _start_web(args.web, {
            "mode": "record", "title": f"{opts.out / session}.csv · {args.port}",
            "record_labels": [args.label, *args.labels], "rate_hz": args.rate})
    keys = KeyReader(sys.stdin)
    on_samples = None
    if server is not None:
        from gesturekit.device.live.web import RecordLink

        keys = RecordLink(keys, server)
        on_samples = keys.samples
    recorder = Recorder(opts, keys, on_samples=on_samples)
    _on_signals(recorder.stop)
    if args.labels:
        choices = ", ".join(f"{i + 1}={name}" for i, name in enumerate(args.labels))
        print(f"record: keys {choices}, 0={args.label}", file=sys.stderr, flush=True)
    try:
        result = recorder.run()
    finally:
        keys.close()
    print(f"recorded {result['samples']} samples at {result['sample_rate_hz']:g} Hz into "
          f"{result['path']} (labels: {result['labels']}; {result['bad_lines']} bad lines; "
          f"{result['ended']})")
    return 0
