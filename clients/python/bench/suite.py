"""The benchmark suite (``./sluice bench [--quick]``): Sluice beside the ceilings and PyTorch's
DataLoader, in one run on the same files.

Rows, each reading the same dataset into int64 ``[B, L]`` torch tensors (ceilings aside):

* ``sequential read``: the shard files read front to back in 8 MiB chunks (the storage ceiling);
* ``pyarrow Flight``: pyarrow's own Flight server streaming prebuilt batches of the same shape from
  memory, read by a plain pyarrow client (the wire ceiling);
* ``DataLoader 0w`` / ``2w``: PyTorch's DataLoader over a map-style Dataset that reads each sample
  from the files (seeded shuffle, default collate), 0 and 2 worker processes;
* ``Sluice cpu`` / ``shm``: ``sluice.Dataset`` from a daemon on this host, batches in the Flight
  stream or read in place from shared memory; ``cuda`` where the daemon offers it.

Warm rows run with the files in the page cache, medians over rounds (every row once per round).
Cold rows, where this process may drop the page cache (root, /proc/sys/vm/drop_caches), run one
pass each after dropping it, the daemon restarted so that its own cache is empty too. Then a
simulated trainer consumes each loader's batches, sleeping per step as if computing, at 80% of
that loader's warm rate and at a fixed rate for all (``--trainer-rate``): the stall fraction is
the share of the trainer's time spent waiting for a batch after the first.

Writes a table (absolute figures, ratios to the ceilings and to the best DataLoader), a JSON file
and a self-contained HTML picture of throughput and stall over time per loader.
"""

import argparse
import html
import json
import os
import platform
import statistics
import struct
import sys
import tarfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import delivery  # noqa: E402  (dataset, daemon and reference-server helpers)

# --- formats --------------------------------------------------------------------------------
# Each format writes the same token content (token j of sample s is (s*31 + j) % 65536, uint16)
# in its own files, says how Sluice indexes them, and gives DataLoader a map-style Dataset that
# reads sample i from those files as an int64 tensor.


class TokensFormat(object):
    name = "tokens"

    def write(self, root, samples, seq_len):
        delivery.write_tokens(root, samples, seq_len)

    def index_args(self):
        return ["--format", "tokens", "--dtype", "uint16"]

    def files(self, root):
        return sorted(os.path.join(root, f) for f in os.listdir(root) if f.endswith(".bin"))

    def map_dataset(self, root, seq_len):
        return delivery.TokenFiles(self.files(root), seq_len)

    def to_tensors(self, batch):
        return batch["tokens"]


class MegatronFormat(TokensFormat):
    """Megatron-LM indexed datasets (NAME.bin + NAME.idx), one sequence per sample."""
    name = "megatron"

    def write(self, root, samples, seq_len):
        for shard, ids in delivery.shards(samples, max(1, (64 << 20) // (seq_len * 2))):
            n = len(ids)
            prefix = os.path.join(root, "corpus_%02d_text_document" % shard)
            delivery.token_fn(ids, seq_len).astype(np.uint16).tofile(prefix + ".bin")
            lengths = np.full(n, seq_len, dtype="<i4")
            pointers = np.arange(n, dtype="<i8") * (seq_len * 2)
            documents = np.arange(n + 1, dtype="<i8")
            with open(prefix + ".idx", "wb") as f:
                f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8))
                f.write(struct.pack("<Q", n) + struct.pack("<Q", n + 1))
                f.write(lengths.tobytes() + pointers.tobytes() + documents.tobytes())

    def index_args(self):
        return ["--format", "megatron"]

    def map_dataset(self, root, seq_len):
        return MegatronFiles(self.files(root))


class MegatronFiles(delivery.PreadSamples):
    """Reads each shard's .idx (lengths, pointers) once; sample i is one sequence."""

    def __init__(self, bins):
        super(MegatronFiles, self).__init__(bins)
        self.index = []
        for b in bins:
            with open(b[:-4] + ".idx", "rb") as f:
                head = f.read(9 + 8 + 1 + 8 + 8)
                count = struct.unpack("<Q", head[18:26])[0]
                lengths = np.frombuffer(f.read(4 * count), dtype="<i4")
                pointers = np.frombuffer(f.read(8 * count), dtype="<i8")
            self.index.append((lengths, pointers))
        self.starts = np.cumsum([0] + [len(ix[0]) for ix in self.index])

    def __len__(self):
        return int(self.starts[-1])

    def locate(self, i):
        s = int(np.searchsorted(self.starts, i, side="right") - 1)
        j = i - int(self.starts[s])
        lengths, pointers = self.index[s]
        return s, int(pointers[j]), int(lengths[j]) * 2


class WdsFormat(TokensFormat):
    """WebDataset tars: one ``KEY.tokens`` member (raw uint16) per sample."""
    name = "wds"

    def write(self, root, samples, seq_len):
        for shard, ids in delivery.shards(samples, max(1, (64 << 20) // (seq_len * 2 + 1024))):
            tokens = delivery.token_fn(ids, seq_len).astype(np.uint16)
            with tarfile.open(os.path.join(root, "shard-%05d.tar" % shard), "w",
                              format=tarfile.USTAR_FORMAT) as tar:
                for k, sample_id in enumerate(ids):
                    data = tokens[k].tobytes()
                    info = tarfile.TarInfo("%09d.tokens" % sample_id)
                    info.size = len(data)
                    tar.addfile(info, _Bytes(data))

    def index_args(self):
        return ["--format", "wds"]

    def files(self, root):
        return sorted(os.path.join(root, f) for f in os.listdir(root) if f.endswith(".tar"))

    def map_dataset(self, root, seq_len):
        return WdsFiles(self.files(root))

    def to_tensors(self, batch):
        # wds columns are binary: one bytes object per sample, widened here as DataLoader does.
        import torch
        flat = np.frombuffer(b"".join(batch["tokens"]), dtype=np.uint16)
        return torch.from_numpy(flat.astype(np.int64).reshape(len(batch["tokens"]), -1))


class _Bytes(object):
    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n=-1):
        out = self.data[self.pos:] if n < 0 else self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


class WdsFiles(delivery.PreadSamples):
    """Indexes each tar's members once (tarfile); sample i is one member's data."""

    def __init__(self, tars):
        super(WdsFiles, self).__init__(tars)
        self.members = []  # (tar number, data offset, size)
        for t, path in enumerate(tars):
            with tarfile.open(path, "r") as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        self.members.append((t, m.offset_data, m.size))

    def __len__(self):
        return len(self.members)

    def locate(self, i):
        return self.members[i]


FORMATS = {f.name: f for f in (TokensFormat(), MegatronFormat(), WdsFormat())}


def ensure_dataset(fmt, root, samples, seq_len, launcher):
    delivery.ensure_dataset(root, samples, seq_len, launcher, write=fmt.write,
                            index_args=fmt.index_args(), kind=fmt.name)


# --- progress -------------------------------------------------------------------------------

class Progress(object):
    """One status line on stderr: which pass of how many, and its samples as they arrive."""

    def __init__(self, total):
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()
        self.label, self.n, self.t0 = "", 0, 0.0
        self._last = 0.0

    def start(self, label):
        self.done += 1
        self.label, self.n, self.t0 = label, 0, time.perf_counter()
        self._show(force=True)

    def tick(self, n):
        self.n = n
        if self.tty:
            self._show()

    def end(self, note=""):
        dt = time.perf_counter() - self.t0
        line = "[%2d/%d] %-44s %9d samples %7.2f s %10.0f samples/s %s" % (
            self.done, self.total, self.label, self.n, dt, self.n / dt if dt > 0 else 0, note)
        sys.stderr.write(("\r" if self.tty else "") + line + "\n")
        sys.stderr.flush()

    def _show(self, force=False):
        now = time.perf_counter()
        if not self.tty or (not force and now - self._last < 0.3):
            return
        self._last = now
        dt = now - self.t0
        sys.stderr.write("\r[%2d/%d] %-44s %9d samples %7.2f s %10.0f samples/s" % (
            self.done, self.total, self.label, self.n, dt, self.n / dt if dt > 0 else 0))
        sys.stderr.flush()


# --- passes ---------------------------------------------------------------------------------

class Pass(object):
    """One pass of a loader: samples, seconds, and (time, samples) after each batch."""

    def __init__(self, samples, seconds, series, stall=None, first_batch_s=None,
                 stall_series=None):
        self.samples, self.seconds, self.series = samples, seconds, series
        self.stall, self.first_batch_s = stall, first_batch_s
        self.stall_series = stall_series or []  # (time, share stalled since the first batch)

    def rate(self):
        return self.samples / self.seconds


def consume(batches, progress, to_tensors, step_seconds=None):
    """Iterates ``batches`` (dicts); with ``step_seconds``, sleeps that long per batch as a
    trainer computing would. Returns a Pass; its stall is the share of the time after the first
    batch spent waiting for the next one."""
    t0 = time.perf_counter()
    n, series, waited, first, stalls = 0, [], 0.0, None, []
    it = iter(batches)
    while True:
        w0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        now = time.perf_counter()
        if first is None:
            first = now - t0
        else:
            waited += now - w0
        rows = int(to_tensors(batch).shape[0])
        n += rows
        t = time.perf_counter() - t0
        series.append((round(t, 4), n))
        if step_seconds and t > first:
            stalls.append((round(t, 4), waited / (t - first)))
        progress.tick(n)
        if step_seconds:
            time.sleep(step_seconds * rows)
    dt = time.perf_counter() - t0
    after_first = dt - (first or 0.0)
    stall = waited / after_first if step_seconds and after_first > 0 else None
    return Pass(n, dt, series, stall, first, stalls)


def sequential_read(files, sample_bytes, progress):
    t0 = time.perf_counter()
    total, series = 0, []
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while True:
                chunk = f.read(8 << 20)
                if not chunk:
                    break
                total += len(chunk)
                series.append((round(time.perf_counter() - t0, 4), total // sample_bytes))
                progress.tick(total // sample_bytes)
    return Pass(total // sample_bytes, time.perf_counter() - t0, series)


def reference_flight(url, progress):
    import pyarrow.flight as flight
    client = flight.FlightClient(url)
    t0 = time.perf_counter()
    n, series = 0, []
    for chunk in client.do_get(flight.Ticket(b"")):
        n += chunk.data.num_rows
        series.append((round(time.perf_counter() - t0, 4), n))
        progress.tick(n)
    client.close()
    return Pass(n, time.perf_counter() - t0, series)


def dataloader(fmt, root, seq_len, batch, seed, workers):
    import torch
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.utils.data.DataLoader(fmt.map_dataset(root, seq_len), batch_size=batch,
                                       shuffle=True, generator=g, num_workers=workers)


def sluice_dataset(url, batch, epoch, mode):
    import sluice
    return sluice.Dataset(url, "bench", batch, rank=0, world_size=1, seed=0, epoch=epoch,
                          delivery=mode)


def can_drop_caches():
    try:
        with open("/proc/sys/vm/drop_caches", "w"):
            return True
    except OSError:
        return False


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# --- output ---------------------------------------------------------------------------------

def table(results, sample_bytes):
    def rate(name):
        r = results.get(name)
        return r["samples_per_s"] if r else float("nan")
    seq, wire = rate("sequential read (warm)"), rate("pyarrow Flight, prebuilt (warm)")
    dl = max(rate("DataLoader 0w (warm)"), rate("DataLoader 2w (warm)"))
    lines = ["%-34s %11s %9s %9s %9s %9s %11s %11s" % (
        "loader", "samples/s", "MB/s", "vs read", "vs wire", "vs DL", "stall@80%",
        "stall@fixed")]
    for name, r in results.items():
        lines.append("%-34s %11.0f %9.1f %8.2fx %8.2fx %8.2fx %11s %11s" % (
            name, r["samples_per_s"], r["samples_per_s"] * sample_bytes / 1e6,
            r["samples_per_s"] / seq, r["samples_per_s"] / wire, r["samples_per_s"] / dl,
            _pct(r.get("stall_at_80pct")), _pct(r.get("stall_at_fixed"))))
    return "\n".join(lines)


def _pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


def html_picture(path, title, passes, trainer_passes):
    """Throughput over time (one warm pass per loader) and the simulated trainer's cumulative
    stall over time, as inline SVG: a page with no outside dependencies."""
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
              "#7f7f7f"]

    def chart(series_by_name, ylabel, yfmt, rate_of, fixed_ymax=None):
        w, h, pad = 900, 320, 60
        lines, xmax, ymax = [], 0.0, 0.0
        prepared = {}
        for name, pts in series_by_name.items():
            xs, ys = rate_of(pts)
            prepared[name] = (xs, ys)
            if xs:
                xmax, ymax = max(xmax, max(xs)), max(ymax, max(ys))
        xmax, ymax = xmax or 1.0, fixed_ymax or (ymax or 1.0) * 1.1
        svg = ['<svg width="%d" height="%d" xmlns="http://www.w3.org/2000/svg" '
               'font-family="sans-serif" font-size="11">' % (w, h + 40)]
        svg.append('<rect x="%d" y="10" width="%d" height="%d" fill="none" stroke="#999"/>'
                   % (pad, w - pad - 10, h - 20))
        for k in range(5):
            y = 10 + (h - 20) * k / 4
            svg.append('<text x="%d" y="%.0f" text-anchor="end">%s</text>'
                       % (pad - 4, y + 4, yfmt(ymax * (4 - k) / 4)))
        svg.append('<text x="%d" y="%d">time (s), 0 to %.1f</text>' % (pad, h + 5, xmax))
        svg.append('<text x="12" y="%d" transform="rotate(-90 12 %d)">%s</text>'
                   % (h / 2 + 40, h / 2, html.escape(ylabel)))
        for i, (name, (xs, ys)) in enumerate(prepared.items()):
            c = colors[i % len(colors)]
            pts = " ".join("%.1f,%.1f" % (pad + (w - pad - 10) * x / xmax,
                                          10 + (h - 20) * (1 - y / ymax)) for x, y in zip(xs, ys))
            svg.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>'
                       % (c, pts))
            svg.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>'
                       '<text x="%d" y="%d">%s</text>'
                       % (pad + 10 + (i % 4) * 210, h + 15 + (i // 4) * 14, c,
                          pad + 24 + (i % 4) * 210, h + 24 + (i // 4) * 14, html.escape(name)))
        svg.append("</svg>")
        lines.append("\n".join(svg))
        return "\n".join(lines)

    def throughput(pts):
        # About 40 points per pass, whatever its length (a sequential read takes a fraction of
        # a second, DataLoader with workers many).
        bucket = max(0.01, (pts[-1][0] if pts else 1.0) / 40)
        xs, ys, last_t, last_n = [], [], 0.0, 0
        for t, n in pts:
            if t - last_t >= bucket:
                xs.append(t)
                ys.append((n - last_n) / (t - last_t))
                last_t, last_n = t, n
        return xs, ys

    def stall(pts):
        return [p[0] for p in pts], [100 * p[1] for p in pts]

    body = [
        "<!doctype html><html><head><meta charset='utf-8'><title>%s</title></head><body "
        "style='font-family:sans-serif'>" % html.escape(title),
        "<h2>%s</h2>" % html.escape(title),
        "<h3>Throughput over time (one warm pass each)</h3>",
        chart(passes, "samples/s", lambda v: "%.0fk" % (v / 1e3), throughput),
        "<h3>Simulated trainer at 80%% of each loader's rate: share of time stalled so far</h3>",
        chart(trainer_passes, "stall %", lambda v: "%.0f%%" % v, stall, fixed_ymax=100.0),
        "</body></html>",
    ]
    with open(path, "w") as f:
        f.write("\n".join(body))


# --- the run --------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog="sluice bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="65536 samples, 2 rounds: the same rows in a few minutes")
    p.add_argument("--format", default="tokens", choices=sorted(FORMATS))
    p.add_argument("--dir", default=os.path.expanduser("~/.cache/sluice/bench-suite"))
    p.add_argument("--samples", type=int, default=524288)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--memory-budget", default="2g")
    p.add_argument("--trainer-rate", type=float, default=30000,
                   help="the fixed-rate trainer's samples/s (default 30000)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-cache rows")
    p.add_argument("--json", default="sluice-bench.json")
    p.add_argument("--html", default="sluice-bench.html")
    p.add_argument("--launcher", default=os.environ.get("SLUICE_LAUNCHER",
                                                         os.path.join(delivery.REPO, "sluice")))
    a = p.parse_args(argv)
    if a.quick:
        a.samples, a.rounds = min(a.samples, 65536), min(a.rounds, 2)
    fmt = FORMATS[a.format]
    root = os.path.join(a.dir, "%s-%d-%d" % (fmt.name, a.samples, a.seq_len))
    sample_bytes = a.seq_len * 2
    b = a.batch_size
    delivery.log("dataset: %s, %d samples x %d uint16 tokens (%.0f MiB) in %s" % (
        fmt.name, a.samples, a.seq_len, a.samples * sample_bytes / 2**20, root))
    ensure_dataset(fmt, root, a.samples, a.seq_len, a.launcher)
    files = fmt.files(root)
    cold = not a.no_cold and can_drop_caches()
    if not a.no_cold and not cold:
        delivery.log("cold rows skipped: this process may not drop the page cache "
                     "(needs root and a writable /proc/sys/vm/drop_caches)")

    def warm_files():
        for path in files:
            with open(path, "rb") as fh:
                while fh.read(8 << 20):
                    pass

    warm_files()
    daemon = delivery.Daemon(a.launcher, root, a.memory_budget)
    ref = delivery.ReferenceServer(a.samples, a.seq_len, b)
    from sluice import _shm
    import pyarrow.flight as flight
    probe = flight.FlightClient(daemon.url)
    token, cause = _shm.probe(probe)
    probe.close()
    sluice_modes = ["cpu"] + (["shm"] if token else [])
    if token is None:
        delivery.log("shm rows skipped: " + cause)
    delivery.log("cuda rows skipped: the suite measures host delivery; a GPU run is"
                 " hw-tests' CudaDeliveryHwTest (docs/hardware.md)")

    loaders = {  # name -> function(epoch, step_seconds) -> Pass
        "DataLoader 0w": lambda e, s, pr: consume(dataloader(fmt, root, a.seq_len, b, e, 0), pr,
                                                  lambda x: x["tokens"], s),
        "DataLoader 2w": lambda e, s, pr: consume(dataloader(fmt, root, a.seq_len, b, e, 2), pr,
                                                  lambda x: x["tokens"], s),
    }
    for mode in sluice_modes:
        loaders["Sluice %s" % mode] = (
            lambda m: lambda e, s, pr: consume(sluice_dataset(daemon.url, b, e, m), pr,
                                               fmt.to_tensors, s))(mode)
    ceilings = {
        "sequential read": lambda e, s, pr: sequential_read(files, sample_bytes, pr),
        "pyarrow Flight, prebuilt": lambda e, s, pr: reference_flight(ref.url, pr),
    }
    rows = dict(ceilings)
    rows.update(loaders)
    passes_total = (len(rows) * (a.rounds + 1) + (len(rows) - 1 if cold else 0)
                    + 2 * len(loaders))
    progress = Progress(passes_total)
    warm = {name: [] for name in rows}
    last_pass = {}
    epoch = 0
    try:
        # Round 0 warms the JIT, the daemon's cache and the page cache; it is not counted.
        for r in range(a.rounds + 1):
            for name, fn in rows.items():
                progress.start("%s, round %d/%d%s" % (name, r, a.rounds,
                                                      " (warm-up)" if r == 0 else ""))
                epoch += 1
                ps = fn(epoch, None, progress)
                progress.end()
                if r > 0:
                    warm[name].append(ps)
                    last_pass[name] = ps
        rates = {name: statistics.median(x.rate() for x in ps) for name, ps in warm.items()}
        trainer80, trainer_fixed = {}, {}
        for name, fn in loaders.items():
            step80 = 1.0 / (0.8 * rates[name])
            progress.start("%s, trainer at 80%% (%.0f samples/s)" % (name, 0.8 * rates[name]))
            epoch += 1
            trainer80[name] = (fn(epoch, step80, progress), step80)
            progress.end("stall %s" % _pct(trainer80[name][0].stall))
            progress.start("%s, trainer at %.0f samples/s" % (name, a.trainer_rate))
            epoch += 1
            trainer_fixed[name] = fn(epoch, 1.0 / a.trainer_rate, progress)
            progress.end("stall %s" % _pct(trainer_fixed[name].stall))
        cold_rates = {}
        if cold:
            for name, fn in rows.items():
                if name.startswith("pyarrow"):
                    continue  # its batches live in memory: there is no cold case
                if name.startswith("Sluice"):
                    daemon.stop()  # an empty sample cache as well as an empty page cache
                    drop_caches()
                    daemon = delivery.Daemon(a.launcher, root, a.memory_budget)
                else:
                    drop_caches()
                progress.start("%s, cold page cache" % name)
                epoch += 1
                ps = fn(epoch, None, progress)
                progress.end()
                cold_rates[name] = ps.rate()
            warm_files()
    finally:
        daemon.stop()
        ref.stop()

    results = {}
    for name in rows:
        r = {"samples_per_s": rates[name], "rounds": [x.rate() for x in warm[name]]}
        if name in trainer80:
            r["stall_at_80pct"] = trainer80[name][0].stall
            r["stall_at_fixed"] = trainer_fixed[name].stall
            r["trainer_80pct_samples_per_s"] = 0.8 * rates[name]
        results[name + " (warm)"] = r
    for name, v in cold_rates.items():
        results[name + " (cold)"] = {"samples_per_s": v, "rounds": [v]}
    header = ("sluice bench: %s, %d samples of %d B, batch %d, one rank; warm rows: median of %d "
              "rounds; cold rows: one pass after dropping the page cache%s" % (
                  fmt.name, a.samples, sample_bytes, b, a.rounds, "" if cold else " (skipped)"))
    machine = "machine: %s, %d cores, Python %s, %s" % (
        platform.node(), os.cpu_count(), platform.python_version(), platform.platform())
    print()
    print(header)
    print(machine)
    print("stall: share of a simulated trainer's time spent waiting for a batch, consuming at 80%% "
          "of that loader's warm rate, and at a fixed %.0f samples/s" % a.trainer_rate)
    print()
    print(table(results, sample_bytes))
    out = {"format": fmt.name, "samples": a.samples, "seq_len": a.seq_len, "batch_size": b,
           "rounds": a.rounds, "trainer_rate": a.trainer_rate, "cold": cold,
           "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                       "platform": platform.platform()},
           "results": results,
           "series": {name: p.series for name, p in last_pass.items()},
           "trainer_series": {name: p.stall_series for name, (p, _) in trainer80.items()}}
    with open(a.json, "w") as f:
        json.dump(out, f)
    html_picture(a.html, header, {n: p.series for n, p in last_pass.items() if n in loaders},
                 {n: p.stall_series for n, (p, _) in trainer80.items()})
    print("\nwrote %s and %s" % (a.json, a.html))
    return 0


if __name__ == "__main__":
    sys.exit(main())
