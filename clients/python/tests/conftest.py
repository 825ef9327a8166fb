"""One Sluice daemon for the whole test session, serving token datasets whose content is a known
function of the sample id, so every row can be checked.

The daemon is the repo's launcher (``sluice serve``), or ``$SLUICE_LAUNCHER``.
``SLUICE_TEST_SERVER=python`` serves the same files from tests/_reference_server.py instead, for
working on the client without a Java build.
"""

import collections
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

SEQ_LEN = 16
SHARD_SAMPLES = (300, 250, 203)  # 753 in all: no power of two, so batches rarely divide it
SHARD_SAMPLES_U32 = (40, 57)
START_TIMEOUT_S = 180
INDEX_TIMEOUT_S = 600  # the first launcher call may build the daemon
SERVING = re.compile(r"sluice: serving (grpc(?:\+tcp)?://\S+:(\d+))")


def expected_tokens_u16(sample_ids):
    """Token j of global sample s is (s*31 + j) % 65536."""
    s = np.asarray(sample_ids, dtype=np.int64)[:, None]
    return (s * 31 + np.arange(SEQ_LEN)) % 65536


def expected_tokens_u32(sample_ids):
    """Token j of global sample s is (s*100003 + j + 70000) % 2**32: values past uint16."""
    s = np.asarray(sample_ids, dtype=np.int64)[:, None]
    return (s * 100003 + np.arange(SEQ_LEN) + 70000) % (1 << 32)


class Served(object):
    """What the session's daemon serves."""

    def __init__(self, url, launcher_output):
        self.url = url
        self.name = "tok16"
        self.n = sum(SHARD_SAMPLES)
        self.seq_len = SEQ_LEN
        self.name_u32 = "tok32"
        self.n_u32 = sum(SHARD_SAMPLES_U32)
        self.output = launcher_output  # the daemon's recent output lines, for failure messages

    def expected_tokens(self, sample_ids):
        return expected_tokens_u16(sample_ids)


def _write_shards(root, shard_samples, fn, dtype):
    root.mkdir(parents=True, exist_ok=True)
    first = 0
    paths = []
    for i, count in enumerate(shard_samples):
        ids = np.arange(first, first + count)
        path = root / ("shard-%05d.bin" % i)
        fn(ids).astype(dtype).tofile(str(path))
        paths.append(str(path))
        first += count
    return paths


def _launcher():
    path = os.environ.get("SLUICE_LAUNCHER") or str(Path(__file__).resolve().parents[3] / "sluice")
    if not os.path.exists(path):
        pytest.fail("no Sluice launcher at %s (set SLUICE_LAUNCHER)" % path)
    return path


def _index(launcher, root, dtype):
    cmd = [launcher, "dataset", "index", str(root), "--format", "tokens", "--dtype", dtype,
           "--seq-len", str(SEQ_LEN)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=INDEX_TIMEOUT_S)
    if done.returncode != 0 or not (root / "sluice-manifest.json").exists():
        pytest.fail("%s exited %d without writing %s:\n%s" % (
            " ".join(cmd), done.returncode, root / "sluice-manifest.json", done.stdout[-4000:]))


class _Daemon(object):
    """``sluice serve`` as a child process in its own process group; its output is drained on a
    thread (so a full pipe never blocks it) and the serving line parsed for the port."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.lines = collections.deque(maxlen=400)
        self.url = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = SERVING.search(line)
            if m and self.url is None:
                self.url = "grpc://127.0.0.1:%s" % m.group(2)
                self._ready.set()
        self._ready.set()  # exited: wake the waiter

    def wait_ready(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(1.0):
            if time.monotonic() > deadline:
                break
        if self.url is None:
            tail = "\n".join(self.lines)
            self.stop()
            pytest.fail("%s: no 'sluice: serving' line within %d s (exit=%s):\n%s"
                        % (" ".join(self.cmd), timeout_s, self.proc.poll(), tail[-4000:]))

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


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("sluice-data")
    d16, d32 = root / "tok16", root / "tok32"
    paths16 = _write_shards(d16, SHARD_SAMPLES, expected_tokens_u16, np.uint16)
    paths32 = _write_shards(d32, SHARD_SAMPLES_U32, expected_tokens_u32, np.uint32)

    if os.environ.get("SLUICE_TEST_SERVER") == "python":
        from _reference_server import TokenData, start
        server, url = start({"tok16": TokenData(paths16, np.uint16, SEQ_LEN),
                             "tok32": TokenData(paths32, np.uint32, SEQ_LEN)})
        yield Served(url, [])
        server.shutdown()
        return

    launcher = _launcher()
    _index(launcher, d16, "uint16")
    _index(launcher, d32, "uint32")
    daemon = _Daemon([launcher, "serve", "--host", "127.0.0.1", "--port", "0",
                      "--dataset", "tok16=%s" % d16, "--dataset", "tok32=%s" % d32])
    try:
        daemon.wait_ready(START_TIMEOUT_S)
        yield Served(daemon.url, daemon.lines)
    finally:
        daemon.stop()
    # The daemon logs a leak (buffers not released after a stream) or a crashed stream thread
    # at SEVERE; the clients may not notice either.
    severe = [line for line in daemon.lines if "SEVERE" in line]
    if severe:
        pytest.fail("the daemon logged SEVERE during the tests:\n" + "\n".join(severe[-40:]))
