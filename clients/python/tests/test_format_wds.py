"""Round trip for the ``wds`` format: WebDataset tars written by Python's ``tarfile`` (ustar, pax
and GNU dialects), indexed with ``sluice dataset index --format wds``, served by ``sluice serve``
and read back over plain ``pyarrow.flight`` for two ranks. Every sample's key and member bytes
must come back exactly once, by ``sample_id`` (its global index in file-name order).

Its own module-scoped daemon (sluice_daemon); the launcher is ``$SLUICE_LAUNCHER`` or
``<repo>/sluice``.
"""

import io
import os
import tarfile

import numpy as np
import pytest

from flight_helpers import read_stream
from sluice_daemon import index, run_index, serving

NAME = "wdsrt"
BATCH = 5


class _Writer(object):
    """Writes one tar with tarfile and records the samples it holds, in order."""

    def __init__(self, path, fmt, rng):
        self.tar = tarfile.open(str(path), "w", format=fmt)
        self.rng = rng
        self.samples = []  # [(key, {ext: bytes})]
        self.dirs = set()

    def _dirs_of(self, name):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                self.tar.addfile(info)

    def raw(self, name, data):
        self._dirs_of(name)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 1700000000
        self.tar.addfile(info, io.BytesIO(data))

    def sample(self, key, exts):
        members = {}
        for ext, size in exts:
            data = self.rng.bytes(size)
            members[ext] = data
            self.raw("%s.%s" % (key, ext), data)
        self.samples.append((key, members))

    def symlink(self, name, target):
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        self.tar.addfile(info)

    def close(self):
        self.tar.close()


def _write_dataset(root):
    rng = np.random.default_rng(1234)
    sizes = lambda: int(rng.integers(0, 3000))  # noqa: E731
    expected = []

    # Shard 0: plain ustar; nested directories; a 150-byte path (ustar prefix field); a name with
    # several dots; samples missing an extension; a symlink and an extension-less file (skipped).
    w = _Writer(root / "shard-000.tar", tarfile.USTAR_FORMAT, rng)
    for i in range(12):
        exts = [("jpg", sizes()), ("cls", 2), ("seg.png", sizes())]
        if i % 4 == 1:
            exts = [e for e in exts if e[0] != "cls"]
        w.sample("train/part%d/s%03d" % (i % 3, i), exts)
    w.sample("train/" + "d" * 80 + "/" + "e" * 50 + "/deep", [("jpg", 700), ("cls", 1)])
    w.sample("train/multi/x", [("y.tar.gz", 300), ("jpg", 10)])  # member x.y.tar.gz
    w.symlink("train/latest.jpg", "part0/s000.jpg")
    w.raw("train/README", b"not a sample")
    w.close()
    expected += w.samples

    # Shard 1: pax; a 230-byte path and a non-ASCII one (both in pax 'path' records).
    w = _Writer(root / "shard-001.tar", tarfile.PAX_FORMAT, rng)
    for i in range(9):
        exts = [("jpg", sizes()), ("cls", 1), ("json", sizes() // 10)]
        if i == 4:
            exts = [("json", 12)]
        w.sample("val/%d%s/s%03d" % (i, "q" * (i * 25), i), exts)
    w.sample("val/ünïcode/ß", [("jpg", 512), ("cls", 1)])
    w.close()
    expected += w.samples

    # Shard 2: GNU, long names in 'L' members; one empty member.
    w = _Writer(root / "shard-002.tar", tarfile.GNU_FORMAT, rng)
    for i in range(7):
        w.sample("test/g%d%s/k%d" % (i, "g" * (40 * i), i), [("jpg", sizes()), ("cls", 0 if i == 3 else 1)])
    w.close()
    expected += w.samples

    keys = [k for k, _ in expected]
    exts = sorted({e for _, m in expected for e in m})
    assert "train/multi/x" in keys and "y.tar.gz" in exts
    return expected, exts


@pytest.fixture(scope="module")
def wds_served(tmp_path_factory):
    if os.environ.get("SLUICE_TEST_SERVER") == "python":
        pytest.skip("the wds format needs the Java daemon (SLUICE_TEST_SERVER=python)")
    root = tmp_path_factory.mktemp("wds-data")
    expected, exts = _write_dataset(root)
    out = index(root, "wds")
    assert "%d samples" % len(expected) in out, out
    for n in range(3):
        assert (root / ("shard-%03d.tar.sluice-idx" % n)).exists()
    with serving({NAME: root}) as daemon:
        yield daemon.url, expected, exts, root


def _read_rank(url, rank, world):
    cmd = {"dataset": NAME, "rank": rank, "world_size": world, "batch_size": BATCH,
           "shuffle": "global", "seed": 3}
    info, batches = read_stream(url, cmd)
    rows = []
    for batch, meta in batches:
        assert batch.num_rows == BATCH
        real = batch.num_rows - int(meta.get("padded", 0))
        cols = {n: batch.column(n).to_pylist() for n in batch.schema.names}
        for i in range(real):
            rows.append({n: cols[n][i] for n in cols})
    return info.schema.names, rows


def test_wds_round_trip_two_ranks(wds_served):
    url, expected, exts, _ = wds_served
    seen = {}
    for rank in range(2):
        names, rows = _read_rank(url, rank, 2)
        assert set(names) == {"sample_id", "__key__"} | set(exts), names
        assert [n for n in names if n not in ("sample_id", "__key__")] == exts
        for row in rows:
            sid = row["sample_id"]
            assert sid not in seen, "sample_id %d served twice" % sid
            seen[sid] = row
    assert sorted(seen) == list(range(len(expected)))
    for sid, (key, members) in enumerate(expected):
        row = seen[sid]
        assert row["__key__"] == key, (sid, row["__key__"], key)
        for ext in exts:
            assert row[ext] == members.get(ext), "sample_id=%d key=%s ext=%s" % (sid, key, ext)


def test_wds_reindex_unchanged_folder_is_reused(wds_served):
    _, _, _, root = wds_served
    idx = root / "shard-001.tar.sluice-idx"
    before = idx.stat().st_mtime_ns
    done = run_index(root, "wds")
    assert done.returncode == 0, done.stdout
    assert "manifest unchanged" in done.stdout, done.stdout
    assert idx.stat().st_mtime_ns == before
