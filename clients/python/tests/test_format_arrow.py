"""The ``arrow`` format end to end: shards written by pyarrow (IPC file, Feather v2, IPC stream),
indexed with ``sluice dataset index --format arrow``, served by ``sluice serve`` and read back
with plain pyarrow.flight; every served row must equal the row pyarrow wrote, exactly once over
two ranks.

Its own daemon (module scope, started through sluice_daemon); the launcher is ``$SLUICE_LAUNCHER`` or the repo's
``sluice``.
"""

import collections

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pytest

from flight_helpers import read_stream
from sluice_daemon import index, run_index, serving

NAME = "arrowrt"
BATCH_SIZE = 7
WORLD_SIZE = 2

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("score", pa.float32()),
    pa.field("text", pa.string()),
    pa.field("blob", pa.binary()),
    pa.field("ints", pa.list_(pa.int32())),
    pa.field("maybe", pa.int64()),  # nullable, with nulls
])

# (file name, writer, record batch sizes): the global sample id is the row index in file-name
# order, so a.arrow holds ids 0..64, b.feather 65..134, c.ipc 135..184.
SHARDS = [
    ("a.arrow", "file", [40, 0, 25]),
    ("b.feather", "feather", [30, 30, 10]),
    ("c.ipc", "stream", [17, 33]),
]


def row_values(r):
    """Row r's value per column; None is null."""
    return {
        "id": r * 3 + 1,
        "score": None if r % 10 == 9 else r / 4.0,
        "text": None if r % 11 == 5 else "row %d %s" % (r, "\u00e9" * (r % 5)),
        "blob": bytes((r + j) % 256 for j in range(r % 9)),
        "ints": None if r % 7 == 3 else list(range(r, r + r % 4)),
        "maybe": None if r % 3 == 0 else r * r,
    }


def batch_of(first, n):
    rows = [row_values(r) for r in range(first, first + n)]
    return pa.RecordBatch.from_pylist(rows, schema=SCHEMA)


def write_shards(root):
    """Writes SHARDS with pyarrow; returns the total row count."""
    root.mkdir(parents=True, exist_ok=True)
    first = 0
    for name, how, sizes in SHARDS:
        batches = []
        for n in sizes:
            batches.append(batch_of(first, n))
            first += n
        path = str(root / name)
        if how == "file":
            with ipc.new_file(path, SCHEMA) as w:
                for b in batches:
                    w.write_batch(b)
        elif how == "stream":
            with ipc.new_stream(path, SCHEMA) as w:
                for b in batches:
                    w.write_batch(b)
        else:
            # Feather v2 compresses with lz4 by default; Sluice serves uncompressed IPC only.
            table = pa.Table.from_batches(batches, schema=SCHEMA)
            feather.write_feather(table, path, compression="uncompressed",
                                  chunksize=max(sizes))
    return first


@pytest.fixture(scope="module")
def arrow_served(tmp_path_factory):
    root = tmp_path_factory.mktemp("sluice-arrow") / NAME
    n = write_shards(root)
    out = index(root, "arrow")
    assert ("%d samples" % n) in out, out
    with serving({NAME: root}) as daemon:
        yield daemon.url, n, root


def read_rank(url, rank):
    """[(RecordBatch, app_metadata dict)] of one rank's epoch."""
    req = {"dataset": NAME, "rank": rank, "world_size": WORLD_SIZE, "batch_size": BATCH_SIZE,
           "shuffle": "global", "seed": 3}
    info, out = read_stream(url, req)
    return info.schema, out


def test_every_row_is_served_exactly_once_as_written(arrow_served):
    url, n, _ = arrow_served
    counts = collections.Counter()
    for rank in range(WORLD_SIZE):
        schema, batches = read_rank(url, rank)
        assert schema.names == ["sample_id"] + SCHEMA.names
        assert [f.type for f in schema][1:] == [f.type for f in SCHEMA]
        assert batches, "rank %d got no batches" % rank
        for batch, meta in batches:
            real = batch.num_rows - meta.get("padded", 0)
            ids = batch.column("sample_id").to_pylist()
            columns = {name: batch.column(name).to_pylist() for name in SCHEMA.names}
            for i in range(batch.num_rows):
                sid = ids[i]
                assert 0 <= sid < n
                got = {name: columns[name][i] for name in SCHEMA.names}
                assert got == row_values(sid), "sample_id=%d" % sid
                if i < real:
                    counts[sid] += 1
    assert sorted(counts) == list(range(n))
    assert set(counts.values()) == {1}, [s for s, c in counts.items() if c != 1][:10]


def test_reindexing_the_unchanged_folder_keeps_the_manifest(arrow_served):
    _, _, root = arrow_served
    done = run_index(root, "arrow")
    assert done.returncode == 0, done.stdout
    assert "manifest unchanged" in done.stdout, done.stdout
    for name, _, _ in SHARDS:
        assert (root / (name + ".sluice-idx")).is_file()


def test_lz4_feather_is_refused_naming_file_and_fix(tmp_path):
    if not pa.Codec.is_available("lz4"):
        pytest.skip("this pyarrow has no lz4")
    path = tmp_path / "z.feather"
    feather.write_feather(pa.Table.from_batches([batch_of(0, 5)]), str(path))  # lz4 by default
    done = run_index(tmp_path, "arrow")
    assert done.returncode != 0, done.stdout
    assert "file=%s" % path in done.stdout, done.stdout
    assert "compression='uncompressed'" in done.stdout, done.stdout
