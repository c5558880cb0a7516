"""A throwaway Ray head on 127.0.0.1, for `compare --cluster` on one machine: the tests and the
benches start one, users start their own (docs/compare.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# For a Ray head that serves `ray://` clients. The client server forks one session process per
# client from a process with gRPC threads running; with gRPC's fork handlers on, that child
# sometimes dies before it starts (ray-project/ray#63202), and the client then waits forever:
# the first session failed on 5 of 10 fresh heads here, 0 of 10 with the handlers off
# (bench/ray_client_sessions.py; the child only execs, so it needs none). The session process
# also gets 120 s to start, not 30: a loaded machine took longer to import Python and Ray.
HEAD_ENV = {"GRPC_ENABLE_FORK_SUPPORT": "false", "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120"}


@contextlib.contextmanager
def local_head(cpus: int, start_timeout: float = 120.0, env: dict[str, str] = HEAD_ENV) -> Iterator[str]:
    """A throwaway Ray head on 127.0.0.1 (no dashboard) with `cpus` CPUs and `env` added to
    its environment; yields its Ray-client address and stops every process of it on exit. For
    trying `--cluster` on one machine, the tests and the benches."""
    ports = []
    for _ in range(2):  # free ports, outside Ray's worker port range (10002-19999)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    temp = tempfile.mkdtemp(prefix="gkray")  # short: Ray's unix sockets live under it
    log = Path(temp) / "ray_start.log"
    with open(log, "w") as log_file:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
             "--node-ip-address", "127.0.0.1", "--port", str(ports[0]),
             "--ray-client-server-port", str(ports[1]), "--num-cpus", str(cpus), "--num-gpus", "0",
             "--include-dashboard=false", "--disable-usage-stats",
             "--object-store-memory", str(100 * 2**20), "--temp-dir", temp],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **env})
    try:
        deadline = time.monotonic() + start_timeout
        # Up when `ray start` says so (every process launched) and the client port answers.
        while "Ray runtime started" not in log.read_text(errors="replace") or not _listening(ports[1]):
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited with {head.returncode}: see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray head not up within {start_timeout:.0f} s")
            time.sleep(0.5)
        yield f"ray://127.0.0.1:{ports[1]}"
    finally:
        head.terminate()  # `ray start --block` stops the head's processes on SIGTERM
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of its process group is left
        head.wait(10)
        shutil.rmtree(temp, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
