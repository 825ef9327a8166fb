"""The real Sluice daemon for the Python tests: the repo's launcher (or ``$SLUICE_LAUNCHER``),
``sluice dataset index``, and ``sluice serve`` as a child process whose log is checked."""

import collections
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 180
INDEX_TIMEOUT_S = 600  # the first launcher call may build the daemon
SERVING = re.compile(r"sluice: serving (grpc(?:\+tcp|\+tls)?)://\S+:(\d+)")


def launcher():
    path = os.environ.get("SLUICE_LAUNCHER") or str(REPO / "sluice")
    if not os.path.exists(path):
        pytest.fail("no Sluice launcher at %s (set SLUICE_LAUNCHER)" % path)
    return path


def run_index(root, fmt, *options):
    """``sluice dataset index ROOT --format FMT OPTIONS``: the CompletedProcess, output merged."""
    cmd = [launcher(), "dataset", "index", str(root), "--format", fmt] + list(options)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=INDEX_TIMEOUT_S)


def index(root, fmt, *options):
    """As run_index, failing the test unless it wrote the manifest; returns the output."""
    done = run_index(root, fmt, *options)
    if done.returncode != 0 or not (Path(root) / "sluice-manifest.json").exists():
        pytest.fail("sluice dataset index %s --format %s exited %d without a manifest:\n%s" % (
            root, fmt, done.returncode, done.stdout[-4000:]))
    return done.stdout


class Daemon(object):
    """``sluice serve`` in its own process group; its output is drained on a thread (so a full
    pipe never blocks it) and the serving line parsed for the port."""

    def __init__(self, datasets, args=(), env=None, port=0):
        self.cmd = [launcher(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        for name, path in datasets.items():
            self.cmd += ["--dataset", "%s=%s" % (name, path)]
        self.cmd += list(args)
        self.serving_line = None
        self.lines = collections.deque(maxlen=400)
        self.url = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True,
                                     env=None if env is None else dict(os.environ, **env))
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = SERVING.search(line)
            if m and self.url is None:
                self.serving_line = line.strip()
                self.url = "%s://127.0.0.1:%s" % (m.group(1), m.group(2))
                self._ready.set()
        self._ready.set()  # exited: wake the waiter

    def wait_ready(self, timeout_s=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(1.0):
            if time.monotonic() > deadline:
                break
        if self.url is None:
            tail = "\n".join(self.lines)
            self.stop()
            pytest.fail("%s: no 'sluice: serving' line within %d s (exit=%s):\n%s"
                        % (" ".join(self.cmd), timeout_s, self.proc.poll(), tail[-4000:]))

    def terminate(self, timeout_s=30):
        """SIGTERM to the daemon itself, as systemd sends it; waits for it to exit and returns its
        exit code (``stop`` then cleans up)."""
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self._drain.join(timeout=5)
        self.proc.stdout.close()


@contextlib.contextmanager
def serving(datasets, args=(), env=None):
    """A ready daemon serving ``{name: folder}``; stopped afterwards. The daemon logs a leak
    (buffers not released after a stream) or a crashed stream thread at SEVERE, which the
    clients may not notice, so any SEVERE line fails the test."""
    daemon = Daemon(datasets, args, env)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()
    severe = [line for line in daemon.lines if "SEVERE" in line]
    if severe:
        pytest.fail("the daemon logged SEVERE during the tests:\n" + "\n".join(severe[-40:]))
