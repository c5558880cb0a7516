"""Where `gesturekit compare` runs its trainings: local worker processes or tasks on a Ray cluster.

Both run a picklable function on one argument per run, at most `slots` runs at a time, and hand
each result back as soon as its run finishes. A run that dies with its process comes back as
the exception, so the caller can record it and go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gesturekit.errors import UserError

TCP_PROBE_TIMEOUT_S = 5.0  # an unreachable address fails within this
# A head that answered the probe may still take a while to set up a client session on a busy
# machine (the Ray client server starts a process per client).
CONNECT_TIMEOUT_S = 120.0
CONNECT_ATTEMPTS = 3


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def limit_threads(threads: int) -> None:
    """Cap TensorFlow's (and BLAS's) thread pools in this process; must run before TensorFlow is
    imported here, which is why workers call it first thing."""
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _init_local_worker(threads: int, log_dir: str) -> None:
    limit_threads(threads)
    # Ctrl-C is the driver's to handle (it terminates the workers); TensorFlow's start-up chatter
    # goes to a per-worker log instead of over the progress lines.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log = os.open(Path(log_dir) / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)


class LocalWorkers:
    """`workers` spawned processes (fresh interpreters, no forked TensorFlow state), each with
    one TensorFlow thread: N workers use N cores, and a run's result does not depend on N. On
    HAPT a run with 2 intra-op threads gave other numbers than with 1 (macro-F1 0.694 against
    0.730, same seed), and was not faster here; Ray tasks run with 1 thread too."""

    threads = 1

    def __init__(self, workers: int, log_dir: Path):
        self.slots = workers
        self._log_dir = log_dir
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_local_worker,
                                      initargs=(self.threads, str(self._log_dir)))

    def describe(self) -> str:
        return (f"{self.slots} local worker process(es), 1 TensorFlow thread each "
                f"({available_cores()} cores)")

    def submit(self, fn: Callable, arg) -> cf.Future:
        return self._pool.submit(fn, arg)

    def finished(self, handles: list, timeout: float) -> list[tuple[object, object]]:
        """(handle, result or exception) for the runs that finished within `timeout` seconds."""
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        broken = False
        for future in done:
            try:
                out.append((future, future.result()))
            except cf.process.BrokenProcessPool as e:  # a worker was killed (e.g. out of memory)
                broken = True
                out.append((future, RuntimeError(f"worker process died ({e})")))
            except Exception as e:  # noqa: BLE001 - the run's failure is its row, not ours
                out.append((future, e))
        if broken:  # every run still in the pool failed with it; the next ones get a new pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return out

    def close(self, interrupted: bool = False) -> None:
        if not interrupted:
            self._pool.shutdown(wait=True)
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in multiprocessing.active_children():  # this process's workers only
            process.terminate()
        for process in multiprocessing.active_children():
            process.join(timeout=10)


def _ray_task(fn: Callable, arg):
    # A Ray task has one CPU: one TensorFlow thread (Ray reuses worker processes; the first
    # task in each sets the pools before TensorFlow loads, later tasks find them set).
    limit_threads(1)
    return fn(arg)


def _probe(address: str) -> None:
    """Fail fast, naming the address, when nothing listens at host:port."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--cluster {address}: expected ray://HOST:PORT, HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=TCP_PROBE_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"--cluster {address}: cannot reach {host}:{port} "
                        f"({e.strerror or e}); is the Ray head running and the port open?") from None


class RayCluster:
    """Each run one Ray task with 1 CPU (and 1 GPU when the cluster has GPUs); results are
    taken as tasks finish. The dataset path must exist on every node that runs a task."""

    def __init__(self, address: str):
        try:
            import ray
        except ImportError:
            raise UserError("--cluster needs Ray: pip install 'gesturekit[cluster]'") from None
        self._ray = ray
        self.address = address
        if address != "auto":
            _probe(address)
        self._connect()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 0))
        self.slots = max(1, min(gpus, cpus) if gpus else cpus)
        self._resources = f"{cpus} CPUs, {gpus} GPUs"
        # max_retries=0: a failed run is reported, not retried behind the user's back.
        self._remote = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=0)(_ray_task)
        self._pending: list = []

    def _connect(self) -> None:
        """ray.init under a deadline: a host that accepts the connection but never answers
        must not hang the command."""
        error: list[BaseException] = []

        def init() -> None:
            for attempt in range(CONNECT_ATTEMPTS):  # a head still starting refuses sessions
                try:
                    self._ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
                    return
                except Exception as e:  # noqa: BLE001 - handed to the caller's thread
                    if attempt == CONNECT_ATTEMPTS - 1:
                        error.append(e)
                    time.sleep(2)

        thread = threading.Thread(target=init, daemon=True)
        thread.start()
        thread.join(CONNECT_TIMEOUT_S)
        if thread.is_alive():
            raise UserError(f"--cluster {self.address}: no answer from Ray within "
                            f"{CONNECT_TIMEOUT_S:.0f} s; if the head's ray_client_server.err says "
                            "'SpecificServer startup failed', restart the head with "
                            "GRPC_ENABLE_FORK_SUPPORT=false (docs/compare.md)")
        if error:
            text = " ".join(str(error[0]).split())[:300] or type(error[0]).__name__
            raise UserError(f"--cluster {self.address}: cannot connect to Ray ({text})")

    def describe(self) -> str:
        return f"Ray cluster {self.address} ({self._resources}; {self.slots} runs at a time)"

    def submit(self, fn: Callable, arg):
        ref = self._remote.remote(fn, arg)
        self._pending.append(ref)
        return ref

    def finished(self, handles: list, timeout: float) -> list[tuple[object, object]]:
        ready, _ = self._ray.wait(handles, num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            self._pending.remove(ref)
            try:
                out.append((ref, self._ray.get(ref, timeout=CONNECT_TIMEOUT_S)))
            except Exception as e:  # noqa: BLE001 - a crashed task is that run's failed row
                out.append((ref, e))
        return out

    def close(self, interrupted: bool = False) -> None:
        if interrupted:
            for ref in self._pending:
                self._ray.cancel(ref, force=True)
        self._ray.shutdown()


def open_pool(workers: int, cluster: str | None, log_dir: Path) -> LocalWorkers | RayCluster:
    if cluster:
        return RayCluster(cluster)
    return LocalWorkers(workers, log_dir)
