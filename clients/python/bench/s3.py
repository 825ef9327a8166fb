"""S3 benchmark (``./sluice bench s3``): a shuffled epoch from an object store behind a slow link.

An S3-compatible store (s3proxy 4.1.0, filesystem backend, in a JVM of its own) runs in a network
namespace of its own, reached over a veth pair that adds 2 ms each way (4 ms round trip) and limits
the rate (``--rate``). On that link, one run measures:

* ``link``: a plain TCP bulk transfer across it (the denominator of every "% of link");
* ``S3 bulk GET``: large ranged GETs of one object, 8 in flight (what the store can serve);
* ``baseline``: a PyTorch map-style Dataset doing one ranged boto3 GET per sample, in a shuffled
  order, ``DataLoader(num_workers=2, batch_size=64)``, each worker with its own client, for a
  fixed time (it is slow);
* ``Sluice global`` / ``Sluice block``: one full epoch, shuffled globally or by blocks, read with
  ``sluice.Dataset`` (rank 0 of 1) from a daemon serving the dataset straight from the bucket. A
  fresh daemon for each, which first reads an epoch of a small second dataset (``--warmup-size``):
  its JIT is warm, and its cache empty of the measured dataset, as in a long run's next job.

The link is made when this process may (root, ``ip`` and ``tc``): ``tc netem delay 2ms rate R``
on both ends of the veth where the kernel has netem; where it has not (CONFIG_NET_SCH_NETEM unset),
``tc tbf rate R`` on both ends and a delay line in the namespace (a TCP relay that holds every
chunk 2 ms in each direction before passing it on, holding at most 2 MiB per connection and
direction). Without the rights it prints why and exits 0; ``--no-netns`` then runs on loopback,
unshaped.
Everything made (namespace, veth, processes) is removed on exit, on failure and on SIGINT/SIGTERM.

Prints a table (samples/s, MB/s of sample payload, % of link, ratio to the baseline, host CPU
busy) and writes JSON (``--json``). Needs boto3 in the venv (``.venv/bin/pip install boto3``).
"""

import argparse
import collections
import http.client
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import delivery  # noqa: E402  (dataset content, daemon start, logging)

log = delivery.log

BUCKET = "sluice-bench"
ACCESS_KEY = "sluice-bench"
SECRET_KEY = "sluice-bench-secret"
REGION = "us-east-1"
GOAL_LINK_FRACTION = 0.9  # the acceptance: a shuffled epoch at >= 90% of the link rate
# Ports inside the namespace, which is new and empty: fixed ones cannot clash.
S3_PORT, S3_BACKEND_PORT, BULK_PORT, ECHO_PORT = 9000, 9100, 9001, 9002

# s3proxy logs every request at DEBUG unless configured. Its Main sends System.err to its logger,
# so an appender on System.err would feed itself: WARN and above to System.out, the log file.
LOGBACK_XML = """<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="OUT"/></root>
</configuration>
"""


# What this run started and must stop (objects with stop()), in start order: the finally block of
# main() stops them, and so does a second SIGTERM/SIGINT should the first one's unwinding stall.
_owned = []


def _own(x):
    _owned.append(x)
    return x


def _release(x):
    """Stops x (if this run still owns it)."""
    if x in _owned:
        _owned.remove(x)
        x.stop()


def _release_all():
    while _owned:
        try:
            _release(_owned[-1])
        except Exception as e:  # noqa: BLE001  (stop the rest all the same)
            log("cleanup: %s" % e)


class Skip(Exception):
    """This run cannot make its link here; the message says why."""


def run(cmd, check=True):
    """Runs a command quietly; a failure raises with the command and its stderr."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p


def parse_rate(text):
    """'400mbit', '1gbit', '50mbps' (bytes) as bits per second, the way tc reads them."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(bit|bps)", text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError("rate=%s: expected a number and kbit, mbit, gbit "
                                         "(or kbps, mbps, gbps for bytes)" % text)
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    return float(m.group(1)) * scale * (8 if m.group(3) == "bps" else 1)


# --- the link -------------------------------------------------------------------------------

class Link(object):
    """A network namespace joined to this one by a veth pair, shaped on both ends.

    ``host_ip`` is this side's address, ``ns_ip`` the namespace's; ``mode`` says how the delay
    is made: "netem" (the kernel's), "delay-line" (tbf for the rate, a relay for the delay) or
    "none" (``--no-netns``: loopback, no namespace, unshaped)."""

    def __init__(self, rate_bps, delay_ms, use_netns):
        self.rate_bps, self.delay_ms = rate_bps, delay_ms
        self.ns = self.name = self.veth = None
        self.host_ip = self.ns_ip = "127.0.0.1"
        self.mode = "none"
        if not use_netns:
            return
        if os.geteuid() != 0:
            raise Skip("not root: making a network namespace and shaping it with tc needs root")
        for tool in ("ip", "tc"):
            if shutil.which(tool) is None:
                raise Skip("'%s' not found (apt-get install -y iproute2)" % tool)
        try:
            self._make()
        except BaseException:
            _release(self)
            raise

    def _make(self):
        _own(self)
        pid = os.getpid()
        self.ns = self.name = "sluice-s3-%d" % pid
        self.veth = "sls3h%d" % (pid % 10**9)  # interface names: 15 characters at most
        peer = "sls3n%d" % (pid % 10**9)
        self.host_ip, self.ns_ip = self._free_subnet(pid)
        try:
            run(["ip", "netns", "add", self.ns])
        except RuntimeError as e:
            self.ns = None
            raise Skip("cannot make a network namespace (%s)" % e)
        ns = ["ip", "netns", "exec", self.ns]
        run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", self.ns])
        run(["ip", "addr", "add", self.host_ip + "/30", "dev", self.veth])
        run(["ip", "link", "set", self.veth, "up"])
        run(ns + ["ip", "addr", "add", self.ns_ip + "/30", "dev", peer])
        run(ns + ["ip", "link", "set", peer, "up"])
        run(ns + ["ip", "link", "set", "lo", "up"])
        rate = "%dbit" % self.rate_bps
        netem = ["root", "netem", "delay", "%gms" % self.delay_ms, "rate", rate, "limit", "10000"]
        p = run(["tc", "qdisc", "add", "dev", self.veth] + netem, check=False)
        if p.returncode == 0:
            run(ns + ["tc", "qdisc", "add", "dev", peer] + netem)
            self.mode = "netem"
            return
        self.netem_error = p.stderr.strip()
        # No netem: tbf for the rate on both ends, the delay from a relay in the namespace. The
        # bucket holds 4 ms at the rate and one GSO packet at least.
        burst = max(128 << 10, int(self.rate_bps / 8 * 0.004))
        tbf = ["root", "tbf", "rate", rate, "burst", str(burst), "latency", "20ms"]
        run(["tc", "qdisc", "add", "dev", self.veth] + tbf)
        run(ns + ["tc", "qdisc", "add", "dev", peer] + tbf)
        self.mode = "delay-line"

    @staticmethod
    def _free_subnet(pid):
        """A /30 in 10.201.0.0/16 that no interface here uses, picked from the pid."""
        used = run(["ip", "-o", "-4", "addr", "show"]).stdout
        for k in range(16384):
            block = (pid + k) % 16384
            base = "10.201.%d.%d" % (block * 4 // 256, block * 4 % 256)
            host = "10.201.%d.%d" % (block * 4 // 256, block * 4 % 256 + 1)
            ns = "10.201.%d.%d" % (block * 4 // 256, block * 4 % 256 + 2)
            if not any(a in used for a in (base + "/", host + "/", ns + "/")):
                return host, ns
        raise Skip("no free /30 in 10.201.0.0/16")

    def exec_prefix(self):
        return ["ip", "netns", "exec", self.ns] if self.ns else []

    def describe(self):
        if self.mode == "none":
            return "loopback, unshaped (--no-netns)"
        how = ("netem delay %gms rate %s on both ends" if self.mode == "netem" else
               "tbf rate %s on both ends, delay line %gms each way in the namespace "
               "(no netem in this kernel)")
        args = (self.delay_ms, _rate_text(self.rate_bps)) if self.mode == "netem" else (
            _rate_text(self.rate_bps), self.delay_ms)
        return "veth %s <-> %s (%s, %s): %s" % (self.veth, self.name, self.host_ip, self.ns_ip,
                                                how % args)

    def close(self):
        """Ends every process left in the namespace, then removes the veth and the namespace."""
        if self.ns is None:
            return
        pids = run(["ip", "netns", "pids", self.ns], check=False).stdout.split()
        for pid in pids:  # all of them started by this run: the namespace is its own
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        run(["ip", "link", "del", self.veth], check=False)
        run(["ip", "netns", "del", self.ns], check=False)
        self.ns = None

    stop = close


def _rate_text(bps):
    return "%gmbit" % (bps / 1e6) if bps < 1e9 else "%ggbit" % (bps / 1e9)


# --- the namespace's helper: bulk source, echo, delay line ----------------------------------
# Runs inside the namespace as `s3.py _netns-helper SPEC`: threads, because the delay wants
# time.sleep's precision (asyncio's epoll timeouts are whole milliseconds).

def _sleep_overshoot(probe_s):
    """How much later than asked time.sleep(probe_s) returns here (timer slack, wake-up), the
    median of 20: the delay line asks that much less."""
    late = []
    for _ in range(20):
        t0 = time.monotonic()
        time.sleep(probe_s)
        late.append(time.monotonic() - t0 - probe_s)
    return max(0.0, float(np.median(late)))


def _relay(src, dst, delay_s, chunk=256 << 10, depth=8):
    """Passes one direction's bytes on, each chunk ``delay_s`` after it arrived; at most
    ``depth`` chunks wait, so a slow reader still pushes back on the sender."""
    q = queue.Queue(maxsize=depth)

    def deliver():
        broken = False
        while True:
            due, data = q.get()
            if not data:
                break
            if broken:
                continue  # keep draining so that the reader never blocks on a full queue
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                dst.sendall(data)
            except OSError:
                broken = True
        if not broken:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    t = threading.Thread(target=deliver, daemon=True)
    t.start()
    while True:
        try:
            data = src.recv(chunk)
        except OSError:
            data = b""
        q.put((time.monotonic() + delay_s, data))
        if not data:
            break
    t.join()


def _serve(host, port, handle):
    """Accepts on (host, port), one thread per connection; returns the port."""
    srv = socket.create_server((host, port), backlog=256)

    def accept():
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_closing(handle, c), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def _closing(handle, c):
    def run():
        try:
            handle(c)
        except OSError:
            pass
        finally:
            c.close()
    return run


def _bulk(c):
    n = int(c.makefile("rb").readline().strip() or 0)
    chunk = bytes(1 << 20)
    while n > 0:
        c.sendall(chunk[:min(n, len(chunk))])
        n -= min(n, len(chunk))


def _echo(c):
    while True:
        data = c.recv(4096)
        if not data:
            return
        c.sendall(data)


def _relay_to(port, delay_s):
    def handle(c):
        up = socket.create_connection(("127.0.0.1", port))
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            back = threading.Thread(target=_relay, args=(up, c, delay_s), daemon=True)
            back.start()
            _relay(c, up, delay_s)
            back.join()
        finally:
            up.close()
    return handle


def _helper(spec):
    host, delay_s = spec["host"], spec["delay_ms"] / 1e3
    if delay_s > 0:  # the services on loopback, reached through the delay line
        delay_s = max(0.0, delay_s - _sleep_overshoot(delay_s))
        ports = [_serve("127.0.0.1", BULK_PORT + 100, _bulk),
                 _serve("127.0.0.1", ECHO_PORT + 100, _echo)]
        for port, backend in ((S3_PORT, S3_BACKEND_PORT), (BULK_PORT, BULK_PORT + 100),
                              (ECHO_PORT, ECHO_PORT + 100)):
            ports.append(_serve(host, port, _relay_to(backend, delay_s)))
    else:
        ports = [_serve(host, spec.get("bulk_port", BULK_PORT), _bulk),
                 _serve(host, spec.get("echo_port", ECHO_PORT), _echo)]
    print("ready %s" % json.dumps(ports), flush=True)
    threading.Event().wait()  # until killed


class Helper(object):
    """The helper process; ``delay_ms`` > 0 puts a delay line in front of s3proxy as well."""

    def __init__(self, link, delay_ms, bulk_port=BULK_PORT, echo_port=ECHO_PORT):
        spec = {"host": link.ns_ip, "delay_ms": delay_ms, "bulk_port": bulk_port,
                "echo_port": echo_port}
        self.proc = subprocess.Popen(
            link.exec_prefix() + [sys.executable, os.path.abspath(__file__), "_netns-helper",
                                  json.dumps(spec)],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        _own(self)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            _release(self)
            raise RuntimeError("the namespace helper did not start (exit %s)" % self.proc.poll())
        self.ports = json.loads(line.split(" ", 1)[1])

    def stop(self):
        _stop(self.proc)


def _stop(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def measure_link(host, port, seconds_hint, rate_bps):
    """A TCP bulk transfer of about ``seconds_hint`` at the nominal rate: bytes/s achieved."""
    n = max(32 << 20, int(rate_bps / 8 * seconds_hint))
    with socket.create_connection((host, port), timeout=60) as c:
        t0 = time.perf_counter()
        c.sendall(b"%d\n" % n)
        got, buf = 0, bytearray(1 << 20)
        while got < n:
            k = c.recv_into(buf)
            if not k:
                break
            got += k
        return got / (time.perf_counter() - t0)


def measure_rtt(host, port, count=50):
    """Median round trip of one byte over a TCP connection (ms)."""
    with socket.create_connection((host, port), timeout=10) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            c.sendall(b"x")
            c.recv(1)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


# --- s3proxy --------------------------------------------------------------------------------

def find_java():
    """JAVA_HOME's java, else the newest JDK under /usr/lib/jvm (by its release file)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java"), home
    best, best_v = None, -1
    for d in sorted(os.listdir("/usr/lib/jvm")) if os.path.isdir("/usr/lib/jvm") else []:
        home = os.path.join("/usr/lib/jvm", d)
        try:
            with open(os.path.join(home, "release")) as f:
                m = re.search(r'JAVA_VERSION="(\d+)', f.read())
        except OSError:
            continue
        if m and os.access(os.path.join(home, "bin", "java"), os.X_OK) and int(m.group(1)) > best_v:
            best, best_v = home, int(m.group(1))
    if best is None:
        raise RuntimeError("no JDK found: set JAVA_HOME")
    return os.path.join(best, "bin", "java"), best


def s3proxy_classpath(java_home):
    path = os.path.join(delivery.REPO, "testing", "s3proxy", "target", "s3proxy.classpath")
    if not os.path.exists(path):
        log("writing s3proxy's class path (./mvnw -pl testing/s3proxy generate-resources) ...")
        env = dict(os.environ, JAVA_HOME=java_home)
        p = subprocess.run(["./mvnw", "-B", "-o", "-q", "-pl", "testing/s3proxy",
                            "generate-resources"], cwd=delivery.REPO, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0 or not os.path.exists(path):
            raise RuntimeError("could not write %s:\n%s" % (path, p.stdout[-2000:]))
    with open(path) as f:
        return f.read().strip()


class S3Proxy(object):
    """s3proxy serving ``store`` (a folder) in its own JVM, inside the link's namespace."""

    def __init__(self, link, store, workdir, bind_host, bind_port, endpoint):
        java, java_home = find_java()
        cp = s3proxy_classpath(java_home)
        os.makedirs(store, exist_ok=True)
        os.makedirs(workdir, exist_ok=True)
        logback = os.path.join(workdir, "s3proxy-logback.xml")
        props = os.path.join(workdir, "s3proxy.properties")
        self.log_path = os.path.join(workdir, "s3proxy.log")
        with open(logback, "w") as f:
            f.write(LOGBACK_XML)
        with open(props, "w") as f:
            f.write("\n".join([
                "s3proxy.endpoint=http://%s:%d" % (bind_host, bind_port),
                "s3proxy.authorization=aws-v2-or-v4",
                "s3proxy.identity=" + ACCESS_KEY,
                "s3proxy.credential=" + SECRET_KEY,
                "jclouds.provider=filesystem",
                "jclouds.filesystem.basedir=" + store, ""]))
        self.endpoint = endpoint
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(
                link.exec_prefix() + [java, "-Dlogback.configurationFile=" + logback, "-cp", cp,
                                      "org.gaul.s3proxy.Main", "--properties", props],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        _own(self)
        host, port = endpoint.split("//")[1].split(":")
        deadline = time.monotonic() + 60
        while True:  # any HTTP answer will do (an unsigned GET / gets 403)
            if self.proc.poll() is not None:
                raise RuntimeError("s3proxy exited with %d; log %s:\n%s" % (
                    self.proc.returncode, self.log_path, _tail(self.log_path)))
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=2)
                c.request("GET", "/")
                c.getresponse().read()
                c.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    _release(self)
                    raise RuntimeError("s3proxy did not answer at %s within 60 s; log %s"
                                       % (endpoint, self.log_path))
                time.sleep(0.2)

    def stop(self):
        _stop(self.proc)


def _tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def s3_client(endpoint, pool=10):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name=REGION,
                        config=Config(max_pool_connections=pool,
                                      s3={"addressing_style": "path"},
                                      retries={"max_attempts": 3, "mode": "standard"}))


# --- the dataset ----------------------------------------------------------------------------

def shard_layout(samples, seq_len):
    """[(key, first sample, sample count)] of the tokens dataset: shards of about 64 MiB."""
    per_shard = max(1, (64 << 20) // (seq_len * 2))
    return [("shard-%05d.bin" % s, int(ids[0]), len(ids))
            for s, ids in delivery.shards(samples, per_shard)]


def ensure_uploaded(s3, datasets, seq_len, progress):
    """Uploads the shards of ``datasets`` ([(prefix, layout)]) that are missing or of the wrong
    size (the store outlives runs); returns the bytes uploaded."""
    try:
        s3.head_bucket(Bucket=BUCKET)
    except Exception:  # noqa: BLE001  (botocore's ClientError for 404)
        s3.create_bucket(Bucket=BUCKET)
    todo = []
    for prefix, layout in datasets:
        have = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                 Prefix=prefix + "/"):
            for o in page.get("Contents", []):
                have[o["Key"]] = o["Size"]
        todo += [(prefix + "/" + k, first, n) for k, first, n in layout
                 if have.get(prefix + "/" + k) != n * seq_len * 2]
    if not todo:
        return 0
    from concurrent.futures import ThreadPoolExecutor
    progress.start("upload %d shards" % len(todo))
    lock, done = threading.Lock(), [0]

    def put(shard):
        key, first, n = shard
        body = delivery.token_fn(np.arange(first, first + n), seq_len).astype(np.uint16).tobytes()
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        with lock:
            done[0] += n
            progress.tick(done[0])

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(put, todo))
    progress.end()
    return done[0] * seq_len * 2


def bulk_get(s3, key, size, progress, sample_bytes, parallel=8, part=8 << 20):
    """Ranged GETs of ``part`` bytes covering one object, ``parallel`` in flight: bytes read."""
    from concurrent.futures import ThreadPoolExecutor
    ranges = [(o, min(size, o + part) - 1) for o in range(0, size, part)]
    lock, done = threading.Lock(), [0]

    def get(r):
        n = len(s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=%d-%d" % r)["Body"].read())
        with lock:
            done[0] += n
            progress.tick(done[0] // sample_bytes)
        return n

    with ThreadPoolExecutor(parallel) as ex:
        return sum(ex.map(get, ranges))


def run_bulk(s3, key, size, sample_bytes, seconds, rate_bps, progress, meter):
    """Bulk GETs of one object, repeated for about ``seconds`` at the nominal rate; (samples'
    worth of bytes, seconds, None, {})."""
    rounds = max(1, int(rate_bps / 8 * seconds // size))
    meter.start()
    t0 = time.perf_counter()
    total = 0
    for _ in range(rounds):
        total += bulk_get(s3, key, size, progress, sample_bytes)
    meter.stop()
    return total // sample_bytes, time.perf_counter() - t0, None, {"bulk": True}


# --- the baseline ---------------------------------------------------------------------------

class S3Samples(object):
    """Map-style PyTorch Dataset: sample i is one ranged GET of its bytes in its shard, widened
    to int64 tokens, as a training script reading S3 without Sluice would. Each process (each
    DataLoader worker) makes its own boto3 client on first use."""

    def __init__(self, endpoint, prefix, layout, seq_len):
        self.endpoint, self.prefix, self.seq_len = endpoint, prefix, seq_len
        self.keys = [k for k, _, _ in layout]
        self.per_shard = layout[0][2]
        self.samples = sum(n for _, _, n in layout)
        self._client, self._pid = None, None

    def __len__(self):
        return self.samples

    def __getitem__(self, i):
        import torch
        if self._pid != os.getpid():
            self._client, self._pid = s3_client(self.endpoint, pool=2), os.getpid()
        size = self.seq_len * 2
        off = (i % self.per_shard) * size
        raw = self._client.get_object(Bucket=BUCKET, Key=self.prefix + "/" + self.keys[
            i // self.per_shard], Range="bytes=%d-%d" % (off, off + size - 1))["Body"].read()
        return {"sample_id": i,
                "tokens": torch.from_numpy(np.frombuffer(raw, dtype=np.uint16).astype(np.int64))}


def run_baseline(endpoint, prefix, layout, seq_len, batch, workers, seconds, progress, meter):
    """Reads for ``seconds`` after the first batch; (samples after it, seconds, first batch s)."""
    import torch
    g = torch.Generator()
    g.manual_seed(0)
    loader = torch.utils.data.DataLoader(S3Samples(endpoint, prefix, layout, seq_len),
                                         batch_size=batch, shuffle=True, generator=g,
                                         num_workers=workers)
    t0 = time.perf_counter()
    it = iter(loader)
    n, first, t_first, now = 0, None, None, t0
    try:
        for b in it:
            now = time.perf_counter()
            rows = int(b["tokens"].shape[0])
            if first is None:
                first, t_first = now - t0, now
                for k, w in enumerate(getattr(it, "_workers", [])):
                    meter.add("worker %d" % k, w.pid)
                meter.start()
                progress.t0 = now  # the line shows the measured window
            else:
                n += rows
            progress.tick(n)
            if now - t_first >= seconds:
                meter.stop()
                break
    finally:
        del it  # stops the workers
    if t_first is None:
        raise RuntimeError("the DataLoader yielded no batch")
    return n, now - t_first, first


# --- Sluice ---------------------------------------------------------------------------------

class Daemon(delivery.Daemon):
    """delivery.Daemon with its Prometheus endpoint on, whose failures carry its last lines."""

    def __init__(self, launcher, datasets, budget):
        cmd = [launcher, "serve", "--host", "127.0.0.1", "--port", "0", "--memory-budget",
               budget, "--metrics-port", "0"]
        for name, root in datasets.items():
            cmd += ["--dataset", "%s=%s" % (name, root)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        _own(self)
        self.url, self.metrics, self.lines = None, None, collections.deque(maxlen=40)
        # The launcher may build first; a daemon silent for longer than that is stopped.
        watchdog = threading.Timer(600, _stop, (self.proc,))
        watchdog.daemon = True  # never what keeps this process from exiting
        watchdog.start()
        try:
            self._await_serving()
        finally:
            watchdog.cancel()
        if self.url is None:
            _release(self)
            raise RuntimeError("sluice serve did not start:\n" + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _await_serving(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            m = delivery.SERVING.search(line)
            if m:
                self.url = "grpc://127.0.0.1:%s" % m.group(2)
                m = re.search(r" metrics=(\S+)", line)
                if m:
                    self.metrics = m.group(1).rstrip("/")
                    if not self.metrics.endswith("/metrics"):
                        self.metrics += "/metrics"
                break

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def counters(self):
        """The daemon's sluice_* counters and gauges ({name{labels}: value}), or {}."""
        if not self.metrics:
            return {}
        import urllib.request
        try:
            with urllib.request.urlopen(self.metrics, timeout=5) as r:
                text = r.read().decode()
        except OSError as e:
            log("metrics %s: %s" % (self.metrics, e))
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("sluice_"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


def index_dataset(launcher, url, seq_len):
    """``sluice dataset index`` on the bucket: writes sluice-manifest.json there."""
    p = subprocess.run([launcher, "dataset", "index", url, "--format", "tokens", "--dtype",
                        "uint16", "--seq-len", str(seq_len)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()] or ["(no output)"]
        log("sluice dataset index %s: exit %d; last lines:\n%s" % (
            url, p.returncode, "\n".join(lines[-25:])))
        summary = next((ln for ln in reversed(lines) if ln.startswith("sluice")), lines[-1])
        raise RuntimeError("sluice dataset index %s: exit %d: %s" % (url, p.returncode, summary))


def run_sluice(launcher, url, warmup_url, budget, batch, shuffle, progress, meter):
    """One full epoch from a fresh daemon, after an epoch of the warm-up dataset when there is
    one (the daemon's JIT warm, its cache still cold for the measured dataset); (samples,
    seconds, first batch s, delivery, the daemon's counters over the measured epoch)."""
    import sluice
    datasets = {"bench": url}
    if warmup_url:
        datasets["warmup"] = warmup_url
    daemon = Daemon(launcher, datasets, budget)
    meter.add("sluice daemon", daemon.proc.pid)
    try:
        if warmup_url:
            n = 0
            for b in sluice.Dataset(daemon.url, "warmup", batch, rank=0, world_size=1, seed=1,
                                    epoch=0, shuffle=shuffle):
                n += int(b["tokens"].shape[0])
                progress.tick(n)
        before = daemon.counters()
        ds = sluice.Dataset(daemon.url, "bench", batch, rank=0, world_size=1, seed=0, epoch=0,
                            shuffle=shuffle)
        meter.start()
        t0 = progress.t0 = time.perf_counter()  # the line shows the epoch, not the start-up
        n, first = 0, None
        for b in ds:
            n += int(b["tokens"].shape[0])
            if first is None:
                first = time.perf_counter() - t0
            progress.tick(n)
        dt = time.perf_counter() - t0
        meter.stop()
        after = daemon.counters()
        # Counters (*_total) over the measured epoch; gauges as they are after it.
        counters = {k: v - before.get(k, 0.0) if "_total" in k else v for k, v in after.items()}
        return n, dt, first, ds.last_metadata.get("delivery"), counters
    except Exception as e:
        raise RuntimeError("%s\n--- daemon's last lines ---\n%s" % (e, "".join(daemon.lines)))
    finally:
        _release(daemon)


# --- host CPU -------------------------------------------------------------------------------

def _host_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait (clock ticks, all CPUs)


def _proc_cpu(pid):
    """CPU seconds of one process (its threads; not its children), or 0 once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Meter(object):
    """Over a measured window: the host's CPU busy share, and the cores each named process
    used (its CPU seconds per second)."""

    def __init__(self, procs):
        self.procs = dict(procs)  # name -> pid
        self.busy, self.by_process = None, {}

    def add(self, name, pid):
        self.procs[name] = pid

    def start(self):
        self._host = _host_cpu()
        self._proc = {n: _proc_cpu(p) for n, p in self.procs.items()}
        self._t0 = time.perf_counter()

    def stop(self):
        total, idle = [b - a for a, b in zip(self._host, _host_cpu())]
        self.busy = 1.0 - idle / total if total else float("nan")
        wall = time.perf_counter() - self._t0
        self.by_process = {n: (_proc_cpu(p) - self._proc.get(n, 0.0)) / wall
                           for n, p in self.procs.items()}
        # The rest: DataLoader workers, the kernel's share of the link, other tenants.
        self.by_process["other"] = max(0.0, self.busy * os.cpu_count()
                                       - sum(self.by_process.values()))


# --- the run --------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog="sluice bench s3", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="128 MiB, a 10 s baseline: the same rows in about two minutes")
    p.add_argument("--rate", default="200mbit", type=parse_rate,
                   help="the link's rate, as tc writes it (default 200mbit: on 2 cores the "
                        "store, the delay line, the trainer and the daemon share the CPUs; "
                        "400mbit is within reach there, its start-up share decides)")
    p.add_argument("--delay-ms", type=float, default=2.0,
                   help="added delay each way (default 2: a 4 ms round trip)")
    p.add_argument("--size", type=int, default=512, help="dataset size in MiB (default 512)")
    p.add_argument("--seq-len", type=int, default=2048,
                   help="uint16 tokens per sample (default 2048: 4 KiB samples)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    p.add_argument("--baseline-seconds", type=float, default=30.0)
    p.add_argument("--shuffle", default="global,block",
                   help="Sluice rows: comma-separated shuffle modes (default global,block)")
    p.add_argument("--memory-budget", default="2g",
                   help="the daemon's budget (default 2g: half is cache, split between the "
                        "measured and the warm-up dataset, and an evicting cache borrows what "
                        "batches leave idle of the other half; a block of 4 shards, 256 MiB here, "
                        "must fit the measured one's share for block reads in whole chunks)")
    p.add_argument("--warmup-size", type=int, default=64,
                   help="MiB of a second dataset each daemon reads an epoch of before the "
                        "measured one, so that its JIT is warm and its cache still cold for the "
                        "measured dataset (default 64; 0: none)")
    p.add_argument("--dir", default=os.path.expanduser("~/.cache/sluice/bench-s3"),
                   help="the store's folder and s3proxy's log (the store is kept for the next run)")
    p.add_argument("--no-netns", action="store_true",
                   help="without root: s3proxy on loopback, no delay, no rate limit")
    p.add_argument("--json", default="sluice-bench-s3.json")
    p.add_argument("--launcher", default=os.environ.get("SLUICE_LAUNCHER",
                                                         os.path.join(delivery.REPO, "sluice")))
    a = p.parse_args(argv)
    if a.quick:
        a.size, a.baseline_seconds = min(a.size, 128), min(a.baseline_seconds, 10.0)
    try:
        import boto3  # noqa: F401
    except ImportError:
        log("sluice bench s3 needs boto3: %s -m pip install boto3" % sys.executable)
        return 2
    from suite import Progress

    sample_bytes = a.seq_len * 2
    samples = (a.size << 20) // sample_bytes
    layout = shard_layout(samples, a.seq_len)
    prefix = "tokens-%d-%d" % (samples, a.seq_len)
    warmup_samples = (a.warmup_size << 20) // sample_bytes
    warmup_layout = shard_layout(warmup_samples, a.seq_len) if warmup_samples else None
    warmup_prefix = "warmup-%d-%d" % (warmup_samples, a.seq_len) if warmup_samples else None
    modes = [m for m in a.shuffle.split(",") if m]

    signalled = []

    def on_signal(signum, frame):
        log("sluice bench s3: signal %d, cleaning up" % signum)
        if signalled:  # the first one's unwinding stalled: stop everything now
            _release_all()
            os._exit(128 + signum)
        signalled.append(signum)
        raise SystemExit(128 + signum)  # unwinds through the finally block below

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    link = helper = proxy = None
    results, notes = {}, []
    try:
        try:
            link = Link(a.rate, a.delay_ms, not a.no_netns)
        except Skip as e:
            print("sluice bench s3: skipped: %s. Run as root, or pass --no-netns to run on "
                  "loopback without delay or rate limit." % e)
            return 0
        log("link: " + link.describe())
        shaped_delay = a.delay_ms if link.mode == "delay-line" else 0
        if link.mode == "none":
            helper = Helper(link, 0, bulk_port=0, echo_port=0)
            bulk_port, echo_port = helper.ports
        else:
            helper = Helper(link, shaped_delay)
            bulk_port, echo_port = BULK_PORT, ECHO_PORT
        if link.mode == "delay-line":
            bind_host, bind_port = "127.0.0.1", S3_BACKEND_PORT
            endpoint = "http://%s:%d" % (link.ns_ip, S3_PORT)
        elif link.mode == "netem":
            bind_host, bind_port = link.ns_ip, S3_PORT
            endpoint = "http://%s:%d" % (link.ns_ip, S3_PORT)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                bind_port = s.getsockname()[1]
            bind_host, endpoint = "127.0.0.1", "http://127.0.0.1:%d" % bind_port

        rtt = measure_rtt(link.ns_ip, echo_port)
        log("round trip measured: %.2f ms (TCP, one byte, median of 50)" % rtt)
        link_bps = measure_link(link.ns_ip, bulk_port, 4.0, a.rate)
        log("link rate measured: %.1f MB/s (%.0f Mbit/s) by a TCP bulk transfer; nominal %s"
            % (link_bps / 1e6, link_bps * 8 / 1e6,
               _rate_text(a.rate) if link.mode != "none" else "none"))

        proxy = S3Proxy(link, os.path.join(a.dir, "store"), a.dir, bind_host, bind_port, endpoint)
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                           "AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint})
        s3 = s3_client(endpoint, pool=16)
        passes = 3 + len(modes)
        progress = Progress(passes + 1)
        uploaded = ensure_uploaded(s3, [(prefix, layout)] + (
            [(warmup_prefix, warmup_layout)] if warmup_prefix else []), a.seq_len, progress)
        if not uploaded:
            progress.done += 1
        log("dataset: s3://%s/%s, %d samples of %d B (uint16 x %d), %d shards, %.0f MiB%s"
            % (BUCKET, prefix, samples, sample_bytes, a.seq_len, len(layout),
               samples * sample_bytes / 2**20, "" if uploaded else " (already in the store)"))

        def row(name, fn):
            meter = Meter(procs)
            progress.start(name)
            try:
                n, seconds, first, extra = fn(meter)
            except Exception as e:  # noqa: BLE001  (a row that fails is reported, not fatal)
                progress.end("unavailable")
                results[name] = {"error": str(e)}
                log("%s unavailable: %s" % (name, e))
                return
            progress.tick(n)
            progress.end()
            results[name] = dict(extra, samples=n, seconds=seconds, first_batch_s=first,
                                 samples_per_s=n / seconds,
                                 mb_per_s=n * sample_bytes / seconds / 1e6,
                                 link_fraction=n * sample_bytes / seconds / link_bps,
                                 cpu_busy=meter.busy, cpu_cores_by_process=meter.by_process)

        big_key, _, big_n = layout[0]
        procs = {"s3proxy": proxy.proc.pid, "this process": os.getpid()}
        if link.mode == "delay-line":
            procs["delay line"] = helper.proc.pid
        row("S3 bulk GET (8 x 8 MiB in flight)", lambda m: run_bulk(
            s3, prefix + "/" + big_key, big_n * sample_bytes, sample_bytes, 4.0,
            a.rate if link.mode != "none" else 1e9, progress, m))
        baseline = "baseline: DataLoader %dw, 1 GET/sample" % a.workers
        row(baseline, lambda m: run_baseline(endpoint, prefix, layout, a.seq_len, a.batch_size,
                                             a.workers, a.baseline_seconds, progress, m) + ({},))
        url = "s3://%s/%s" % (BUCKET, prefix)
        warmup_url = "s3://%s/%s" % (BUCKET, warmup_prefix) if warmup_prefix else None
        progress.start("sluice dataset index %s" % url)
        try:
            index_dataset(a.launcher, url, a.seq_len)
            if warmup_url:
                index_dataset(a.launcher, warmup_url, a.seq_len)
            progress.end()
            index_error = None
        except Exception as e:  # noqa: BLE001
            progress.end("failed")
            index_error = str(e)
            log("Sluice rows unavailable: " + index_error)
        for mode in modes:
            name = "Sluice shuffle=%s" % mode
            if index_error:
                progress.done += 1
                results[name] = {"error": index_error}
                continue

            def one(meter, mode=mode):
                n, dt, first, via, counters = run_sluice(a.launcher, url, warmup_url,
                                                         a.memory_budget, a.batch_size, mode,
                                                         progress, meter)
                if n < samples:
                    raise RuntimeError("the epoch ended after %d samples of %d" % (n, samples))
                return n, dt, first, {"delivery": via, "daemon_counters": counters}
            row(name, one)
    finally:
        _release_all()

    base = results.get(baseline, {}).get("samples_per_s")
    print()
    print("sluice bench s3: %d samples of %d B (tokens uint16 x %d, %d MiB), batch %d, one rank"
          % (samples, sample_bytes, a.seq_len, a.size, a.batch_size))
    print("link: %s" % link.describe())
    print("link rate: nominal %s, measured %.1f MB/s (%.0f Mbit/s, TCP bulk); round trip %.2f ms"
          % (_rate_text(a.rate) if link.mode != "none" else "none", link_bps / 1e6,
             link_bps * 8 / 1e6, rtt))
    print("machine: %s, %d cores, Python %s" % (platform.node(), os.cpu_count(),
                                                 platform.python_version()))
    print()
    print("%-40s %11s %9s %10s %12s %9s" % ("row", "samples/s", "MB/s", "% of link",
                                           "vs baseline", "host CPU"))
    print("%-40s %11s %9.1f %9.1f%% %12s %9s" % ("link (TCP bulk)", "-", link_bps / 1e6, 100.0,
                                                "-", "-"))
    for name, r in results.items():
        if "error" in r:
            print("%-40s unavailable: %s" % (name, r["error"].splitlines()[0][:200]))
            continue
        bulk = r.get("bulk")
        print("%-40s %11s %9.1f %9.1f%% %12s %8.0f%%" % (
            name, "-" if bulk else "%.0f" % r["samples_per_s"], r["mb_per_s"],
            100 * r["link_fraction"],
            "%.1fx" % (r["samples_per_s"] / base) if base and not bulk else "-",
            100 * r["cpu_busy"]))
        c = r.get("daemon_counters")
        if c:
            reqs = c.get("sluice_s3_requests_total", 0)
            got = sum(v for k, v in c.items() if k.startswith("sluice_bytes_read_total"))
            reads = sum(v for k, v in c.items() if k.startswith("sluice_reads_total"))
            print("%-40s   S3: %d requests (%d retries, %d hedges), %d reads of %.0f KiB on "
                  "average; streams stalled %.1f s; delivery %s" % (
                      "", reqs, c.get("sluice_s3_retries_total", 0),
                      c.get("sluice_s3_hedges_total", 0), reads, got / max(reads, 1) / 1024,
                      c.get("sluice_stall_seconds_total", 0), r.get("delivery")))
        print("%-40s %s" % ("", "  CPU, cores: " + ", ".join(
            "%s %.2f" % (k, v) for k, v in r["cpu_cores_by_process"].items())))
        other = r["cpu_cores_by_process"].get("other", 0.0)
        if other > 0.25:
            notes.append("%s: %.2f cores went to processes outside this benchmark (or to the "
                         "kernel): the figures may be disturbed" % (name, other))
        if r["cpu_busy"] > 0.9:
            notes.append("%s: the host's CPUs were %.0f%% busy (%d cores): the rate may be CPU-"
                         "bound rather than link-bound" % (name, 100 * r["cpu_busy"],
                                                           os.cpu_count()))
    print()
    for name, r in results.items():
        if name.startswith("Sluice") and "link_fraction" in r:
            print("%s: %.1f%% of the link (goal >= %.0f%%: %s), %.1fx the per-sample baseline"
                  % (name, 100 * r["link_fraction"], 100 * GOAL_LINK_FRACTION,
                     "met" if r["link_fraction"] >= GOAL_LINK_FRACTION else "not met",
                     r["samples_per_s"] / base if base else float("nan")))
    for n in notes:
        print("note: " + n)
    out = {"samples": samples, "seq_len": a.seq_len, "sample_bytes": sample_bytes,
           "size_mib": a.size, "batch_size": a.batch_size, "workers": a.workers,
           "link": {"mode": link.mode, "nominal_bps": a.rate if link.mode != "none" else None,
                    "delay_ms_each_way": a.delay_ms if link.mode != "none" else 0,
                    "measured_bytes_per_s": link_bps, "rtt_ms": rtt},
           "machine": {"node": platform.node(), "cpus": os.cpu_count()},
           "goal_link_fraction": GOAL_LINK_FRACTION, "results": results, "notes": notes}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
    print("\nwrote %s" % a.json)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_netns-helper":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        _helper(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
