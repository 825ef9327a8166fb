"""Delivery benchmark for Sluice, in one run on the same files (``./sluice bench delivery``).

Rows, each an epoch of the same shuffled token dataset (warm page cache, one rank):

* ``pyarrow-flight``: pyarrow's own Flight server (C++) streaming the same batch shape, prebuilt
  in memory, read by a plain pyarrow client: the ceiling for a Flight stream on this machine.
* ``sluice cpu`` / ``sluice shm``: the daemon streaming the epoch, read by plain pyarrow
  (cpu) or in place from shared memory (shm), into Arrow record batches.
* ``sluice.Dataset cpu`` / ``shm``: the Python client yielding torch tensors (int64 tokens), as
  constructed by default (``prefetch=2``: read and converted ahead on a background thread, for
  overlap with a training step, while the consumer stays away between batches; this loop comes
  right back, so after a few batches it reads on its own thread), and with ``prefetch=0`` (always
  read on the consuming thread).
* ``DataLoader 0w`` / ``2w``: PyTorch's DataLoader over a map-style Dataset reading each sample
  from the shard files, seeded shuffle, default collate, int64 tokens, 0 and 2 workers.

Rows are measured in rounds (every row once per round, in turn) and each figure is the median
over rounds; ratios are computed from those medians. Beside each rate, the CPU time per sample of
the server (the daemon's processes, or pyarrow's server process) and of the client (this process
and the DataLoader's workers), from ``/proc`` and ``getrusage``: where the two share the machine's
cores, as they do on a small VM, the rates say how the two split them, and the CPU per sample what
each side costs wherever it runs. Each Sluice pass reads a new epoch of one
job (seed 0) through the read engine, as a training run does; each DataLoader pass builds its
loader (and, with workers, starts them). Prints a table and writes a JSON file.
"""

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SERVING = re.compile(r"sluice: serving (grpc(?:\+tcp)?://\S+:(\d+))")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- the dataset ---------------------------------------------------------------------------

def token_fn(ids, seq_len):
    return (ids[:, None] * 31 + np.arange(seq_len)) % 65536


def shards(samples, per_shard):
    """(shard number, sample ids) for ``samples`` samples cut into shards of ``per_shard``."""
    first = shard = 0
    while first < samples:
        yield shard, np.arange(first, min(samples, first + per_shard))
        first += per_shard
        shard += 1


def write_tokens(root, samples, seq_len):
    """Flat uint16 token shards of about 64 MiB each (the ``tokens`` format)."""
    for shard, ids in shards(samples, max(1, (64 << 20) // (seq_len * 2))):
        token_fn(ids, seq_len).astype(np.uint16).tofile(os.path.join(root, "shard-%05d.bin" % shard))


def ensure_dataset(root, samples, seq_len, launcher, write=write_tokens,
                   index_args=("--format", "tokens", "--dtype", "uint16"), kind="tokens"):
    """Makes and indexes the dataset in ``root`` unless the one there has this shape already."""
    manifest = os.path.join(root, "sluice-manifest.json")
    stamp = os.path.join(root, "bench-shape.json")
    shape = {"samples": samples, "seq_len": seq_len}
    if kind != "tokens":
        shape["format"] = kind
    if os.path.exists(manifest) and os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == shape:
                return
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(root):
        os.remove(os.path.join(root, name))
    write(root, samples, seq_len)
    args = list(index_args) + (["--seq-len", str(seq_len)] if kind == "tokens" else [])
    subprocess.run([launcher, "dataset", "index", root] + args, check=True,
                   stdout=subprocess.DEVNULL)
    with open(stamp, "w") as f:
        json.dump(shape, f)


def shard_files(root):
    return sorted(os.path.join(root, f) for f in os.listdir(root) if f.endswith(".bin"))


# --- servers -------------------------------------------------------------------------------

class Daemon(object):
    def __init__(self, launcher, root, budget):
        cmd = [launcher, "serve", "--host", "127.0.0.1", "--port", "0", "--dataset",
               "bench=" + root, "--memory-budget", budget]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self.url = None
        deadline = time.monotonic() + 300
        for line in self.proc.stdout:
            m = SERVING.search(line)
            if m:
                self.url = "grpc://127.0.0.1:%s" % m.group(2)
                break
            if time.monotonic() > deadline:
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("sluice serve did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def cpu(self):
        """CPU seconds of the launcher and the JVM it started (one session)."""
        return process_cpu(session=self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)


REFERENCE_SERVER = r"""
import sys, numpy as np, pyarrow as pa, pyarrow.flight as flight
samples, seq_len, batch, distinct = map(int, sys.argv[1:5])
schema = pa.schema([("sample_id", pa.uint64()), ("tokens", pa.list_(pa.uint16(), seq_len))])
rng = np.random.default_rng(0)
batches = []
for k in range(distinct):
    ids = rng.integers(0, samples, batch, dtype=np.uint64)
    tok = ((ids.astype(np.int64)[:, None] * 31 + np.arange(seq_len)) % 65536).astype(np.uint16)
    values = pa.array(tok.reshape(-1), type=pa.uint16())
    batches.append(pa.record_batch([pa.array(ids), pa.FixedSizeListArray.from_arrays(values, seq_len)],
                                   schema=schema))
steps = samples // batch
table = pa.Table.from_batches([batches[i % distinct] for i in range(steps)], schema=schema)
class Server(flight.FlightServerBase):
    def do_get(self, context, ticket):
        return flight.RecordBatchStream(table)
s = Server("grpc://127.0.0.1:0")
print("port", s.port, flush=True)
s.serve()
"""


class ReferenceServer(object):
    def __init__(self, samples, seq_len, batch):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", REFERENCE_SERVER, str(samples), str(seq_len), str(batch), "64"],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.url = "grpc://127.0.0.1:%d" % int(line.split()[1])

    def cpu(self):
        return process_cpu(pid=self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- CPU accounting ------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid=None, session=None):
    """CPU seconds (user + system) of process ``pid``, or of every live process in ``session``."""
    total = 0
    for entry in ([str(pid)] if pid is not None else os.listdir("/proc")):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if session is None or int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def client_cpu():
    """CPU seconds of this process and of its children that ended (a DataLoader's workers)."""
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


# --- the loaders ---------------------------------------------------------------------------

def read_flight(url, ticket):
    """Plain pyarrow: every chunk of one DoGet into record batches; (rows, batches)."""
    client = flight.FlightClient(url)
    rows = n = 0
    for chunk in client.do_get(ticket):
        rows += chunk.data.num_rows
        n += 1
    client.close()
    return rows


def sluice_ticket(url, batch, epoch, delivery, token=None):
    client = flight.FlightClient(url)
    req = {"dataset": "bench", "rank": 0, "world_size": 1, "batch_size": batch, "seed": 0,
           "epoch": epoch, "delivery": delivery}
    if token:
        req["shm_token"] = token
    info = client.get_flight_info(flight.FlightDescriptor.for_command(json.dumps(req)))
    client.close()
    return info.endpoints[0].ticket


def read_sluice_shm(url, batch, epoch, token):
    """Plain pyarrow over shm: the descriptor from the stream, the batch from the mapping."""
    from sluice import _shm
    client = flight.FlightClient(url)
    reader = client.do_get(sluice_ticket(url, batch, epoch, "shm", token))
    importer = _shm.Importer(reader.schema)
    rows = 0
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        meta = json.loads(chunk.app_metadata.to_pybytes())
        if meta["delivery"] != "shm":
            raise RuntimeError("expected shm, the daemon sent %r" % meta["delivery"])
        b = importer.read(meta["shm"])
        rows += b.num_rows
        del b
        importer.release(meta["shm"])
    importer.close()
    client.close()
    return rows


def read_dataset(url, batch, epoch, delivery, prefetch=2):
    import sluice
    ds = sluice.Dataset(url, "bench", batch, rank=0, world_size=1, seed=0, epoch=epoch,
                        delivery=delivery, prefetch=prefetch)
    rows = 0
    for b in ds:
        rows += b["tokens"].shape[0]
    if ds.last_metadata.get("delivery") != delivery:
        raise RuntimeError("asked %s, got %s" % (delivery, ds.last_metadata.get("delivery")))
    return rows


class PreadSamples(object):
    """Map-style PyTorch Dataset reading sample i (uint16 tokens) from the shard files with one
    pread, widened to an int64 tensor, as a training script without Sluice would. Subclasses say
    where each sample is: ``locate(i)`` -> (file number, offset, bytes)."""

    def __init__(self, files):
        self.files = files
        self.fds = None

    def __getitem__(self, i):
        import torch
        if self.fds is None:  # opened per process (workers fork)
            self.fds = [os.open(f, os.O_RDONLY) for f in self.files]
        f, off, size = self.locate(i)
        raw = os.pread(self.fds[f], size, off)
        tokens = torch.from_numpy(np.frombuffer(raw, dtype=np.uint16).astype(np.int64))
        return {"sample_id": i, "tokens": tokens}


class TokenFiles(PreadSamples):
    """Flat token shards: sample i is seq_len uint16 at its offset."""

    def __init__(self, files, seq_len):
        super(TokenFiles, self).__init__(files)
        self.seq_len = seq_len
        self.starts = np.cumsum([0] + [os.path.getsize(f) // (seq_len * 2) for f in files])

    def __len__(self):
        return int(self.starts[-1])

    def locate(self, i):
        s = int(np.searchsorted(self.starts, i, side="right") - 1)
        return s, (i - int(self.starts[s])) * self.seq_len * 2, self.seq_len * 2


def read_dataloader(files, seq_len, batch, seed, workers):
    import torch
    ds = TokenFiles(files, seq_len)
    g = torch.Generator()
    g.manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, generator=g,
                                         num_workers=workers,
                                         persistent_workers=False)
    rows = 0
    for b in loader:
        rows += b["tokens"].shape[0]
    return rows


# --- the run -------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog="sluice bench delivery", description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=os.path.expanduser("~/.cache/sluice/bench-delivery"))
    p.add_argument("--samples", type=int, default=524288)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--memory-budget", default="2g")
    p.add_argument("--json", default="sluice-bench-delivery.json")
    p.add_argument("--launcher", default=os.environ.get("SLUICE_LAUNCHER",
                                                         os.path.join(REPO, "sluice")))
    p.add_argument("--quick", action="store_true", help="65536 samples, 2 rounds")
    a = p.parse_args(argv)
    if a.quick:
        a.samples, a.rounds = min(a.samples, 65536), min(a.rounds, 2)
    root = os.path.join(a.dir, "tokens-%d-%d" % (a.samples, a.seq_len))
    log("dataset: %d samples x %d uint16 tokens in %s" % (a.samples, a.seq_len, root))
    ensure_dataset(root, a.samples, a.seq_len, a.launcher)
    files = shard_files(root)
    for f in files:  # warm the page cache: every row reads warm files
        with open(f, "rb") as fh:
            while fh.read(8 << 20):
                pass
    daemon = Daemon(a.launcher, root, a.memory_budget)
    ref = ReferenceServer(a.samples, a.seq_len, a.batch_size)
    from sluice import _shm
    probe_client = flight.FlightClient(daemon.url)
    token, cause = _shm.probe(probe_client)
    probe_client.close()
    b = a.batch_size
    # Each row: its loader, and the server whose CPU it uses (None: the DataLoader reads itself).
    rows = {
        "pyarrow-flight (prebuilt)": (lambda s: read_flight(ref.url, flight.Ticket(b"")), ref),
        "sluice cpu -> pyarrow": (lambda s: read_flight(daemon.url, sluice_ticket(daemon.url, b, s, "cpu")), daemon),
        "sluice shm -> pyarrow": ((lambda s: read_sluice_shm(daemon.url, b, s, token)) if token else None, daemon),
        "sluice.Dataset cpu -> torch": (lambda s: read_dataset(daemon.url, b, s, "cpu"), daemon),
        "sluice.Dataset shm -> torch": ((lambda s: read_dataset(daemon.url, b, s, "shm")) if token else None, daemon),
        "sluice.Dataset cpu, prefetch=0": (lambda s: read_dataset(daemon.url, b, s, "cpu", 0), daemon),
        "sluice.Dataset shm, prefetch=0": ((lambda s: read_dataset(daemon.url, b, s, "shm", 0)) if token else None, daemon),
        "DataLoader 0 workers -> torch": (lambda s: read_dataloader(files, a.seq_len, b, s, 0), None),
        "DataLoader 2 workers -> torch": (lambda s: read_dataloader(files, a.seq_len, b, s, 2), None),
    }
    if token is None:
        log("shm rows skipped: " + cause)
    times = {name: [] for name, (fn, _) in rows.items() if fn}
    server_us = {name: [] for name in times}
    client_us = {name: [] for name in times}
    counted = {}
    try:
        # Round 0 warms the daemon's JIT and cache and the page cache; it is not counted.
        for r in range(a.rounds + 1):
            for i, (name, (fn, server)) in enumerate(rows.items()):
                if fn is None:
                    continue
                s0, c0 = server.cpu() if server else 0.0, client_cpu()
                t0 = time.perf_counter()
                # Every loader and round its own epoch of one job (seed 0), as a training run
                # goes: each Sluice pass is a new shuffled order through the read engine, with
                # what the sample cache kept from the passes before (the dataset is larger than
                # the cache by default); each DataLoader pass its own shuffle seed.
                n = fn(r * 16 + i)
                dt = time.perf_counter() - t0
                s_us = (server.cpu() - s0) * 1e6 / n if server else None
                c_us = (client_cpu() - c0) * 1e6 / n
                counted[name] = n
                if r > 0:
                    times[name].append(dt)
                    server_us[name].append(s_us)
                    client_us[name].append(c_us)
                log("  round %d/%d  %-30s %8d samples  %7.2f s  %10.0f samples/s  CPU us/sample: "
                    "server %s, client %.2f" % (r, a.rounds, name, n, dt, n / dt,
                                                "-" if s_us is None else "%.2f" % s_us, c_us)
                    + ("  (warm-up)" if r == 0 else ""))
    finally:
        daemon.stop()
        ref.stop()
    sample_bytes = a.seq_len * 2
    results = {}
    for name, ts in times.items():
        t = statistics.median(ts)
        results[name] = {"samples": counted[name], "seconds_median": t, "seconds": ts,
                         "samples_per_s": counted[name] / t,
                         "mb_per_s": counted[name] * sample_bytes / t / 1e6,
                         "server_cpu_us_per_sample": None if None in server_us[name]
                         else statistics.median(server_us[name]),
                         "client_cpu_us_per_sample": statistics.median(client_us[name])}
    def rate(name):
        return results[name]["samples_per_s"] if name in results else float("nan")
    ceiling = rate("pyarrow-flight (prebuilt)")
    dl0 = rate("DataLoader 0 workers -> torch")
    dl2 = rate("DataLoader 2 workers -> torch")
    dl_best = max(dl0, dl2)
    print()
    print("sluice bench delivery: %d samples of %d B (tokens uint16 x %d), batch %d, one rank, "
          "warm page cache, median of %d rounds" % (a.samples, sample_bytes, a.seq_len, b, a.rounds))
    print("machine: %s, %d cores, Python %s, pyarrow %s"
          % (platform.node(), os.cpu_count(), platform.python_version(), pa.__version__))
    print()
    print("%-32s %12s %10s %12s %14s %16s" % ("loader", "samples/s", "MB/s", "vs pyarrow",
                                              "vs best DataLoader", "CPU us/sample"))
    for name, r in results.items():
        server = r["server_cpu_us_per_sample"]
        print("%-32s %12.0f %10.1f %11.2fx %13.2fx    %s" % (
            name, r["samples_per_s"], r["mb_per_s"], r["samples_per_s"] / ceiling,
            r["samples_per_s"] / dl_best,
            ("server %.2f + " % server if server is not None else "")
            + "client %.2f" % r["client_cpu_us_per_sample"]))
    goals = {
        "cpu vs pyarrow-flight (goal >= 0.9)": rate("sluice cpu -> pyarrow") / ceiling,
        "shm vs cpu, into pyarrow (goal >= 3)": rate("sluice shm -> pyarrow") / rate("sluice cpu -> pyarrow"),
        "shm vs cpu, into torch": rate("sluice.Dataset shm -> torch") / rate("sluice.Dataset cpu -> torch"),
        "Dataset cpu vs best DataLoader (goal >= 3)": rate("sluice.Dataset cpu -> torch") / dl_best,
        "Dataset shm vs best DataLoader (goal >= 5)": rate("sluice.Dataset shm -> torch") / dl_best,
        "Dataset cpu, prefetch=0 vs best DataLoader": rate("sluice.Dataset cpu, prefetch=0") / dl_best,
        "Dataset shm, prefetch=0 vs best DataLoader": rate("sluice.Dataset shm, prefetch=0") / dl_best,
    }
    print()
    for k, v in goals.items():
        print("%-46s %6.2fx" % (k, v))
    out = {"samples": a.samples, "seq_len": a.seq_len, "batch_size": b, "rounds": a.rounds,
           "machine": {"node": platform.node(), "cpus": os.cpu_count()},
           "results": results, "ratios": goals}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
    print("\nwrote %s" % a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
