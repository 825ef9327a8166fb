"""Round trip of the ``megatron`` format: Megatron-LM indexed datasets (NAME.bin + NAME.idx) written
here with numpy and struct alone, indexed and served by the real daemon, read back with plain
pyarrow.flight over two ranks; every sequence must come back byte for byte, exactly once.

The writer follows the layout Megatron-LM's MMapIndexedDatasetBuilder writes; megatron itself is
not imported. Self-contained: it starts its own daemon and uses no conftest fixture.
"""

import collections
import json
import os
import struct

import numpy as np
import pyarrow as pa
import pytest

from flight_helpers import read_stream
from sluice_daemon import index, serving


# Megatron-LM's DType codes.
DTYPE_CODES = {
    np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
    np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
DATASETS = {  # name: (numpy dtype, Arrow element type, sequences per shard)
    "mg_u16": (np.dtype(np.uint16), pa.uint16(), (37, 29)),
    "mg_i32": (np.dtype(np.int32), pa.int32(), (31, 40)),
    "mg_f32": (np.dtype(np.float32), pa.float32(), (23, 26)),
}
BATCH = 5
WORLD = 2


def write_indexed_dataset(prefix, sequences, dtype):
    """Writes PREFIX.bin (the sequences back to back, numpy tofile) and PREFIX.idx."""
    dtype = np.dtype(dtype)
    lengths = np.array([len(s) for s in sequences], dtype="<i4")
    pointers = np.zeros(len(sequences), dtype="<i8")
    if len(sequences) > 1:
        pointers[1:] = np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize)
    # Documents of three sequences each, closed by the sequence count, as Megatron stores them.
    documents = np.array(sorted(set(list(range(0, len(sequences), 3)) + [len(sequences)])),
                         dtype="<i8")
    with open(prefix + ".bin", "wb") as f:
        for s in sequences:
            np.asarray(s).astype(dtype).tofile(f)
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", DTYPE_CODES[dtype]))
        f.write(struct.pack("<Q", len(sequences)))
        f.write(struct.pack("<Q", len(documents)))
        f.write(lengths.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(documents.tobytes(order="C"))


def random_sequences(rng, dtype, count):
    """Lengths 0..60 with every fourth sequence empty; values over the dtype's whole range."""
    out = []
    for i in range(count):
        n = 0 if i % 4 == 1 else int(rng.integers(1, 61))
        if dtype.kind == "f":
            values = rng.standard_normal(n).astype(dtype) * 1e3
        else:
            info = np.iinfo(dtype)
            values = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dtype)
        out.append(values.astype(dtype))
    return out


class Served(object):
    def __init__(self, url, expected, index_output, daemon_lines):
        self.url = url
        self.expected = expected  # name -> [np.ndarray per global sample id]
        self.index_output = index_output  # name -> (folder, first, second index output)
        self.lines = daemon_lines


@pytest.fixture(scope="module")
def megatron_served(tmp_path_factory):
    if os.environ.get("SLUICE_TEST_SERVER") == "python":
        pytest.skip("the megatron format needs the Java daemon (SLUICE_TEST_SERVER=python)")
    root = tmp_path_factory.mktemp("megatron-data")
    rng = np.random.default_rng(20240611)
    expected, outputs = {}, {}
    for name, (dtype, _, shard_counts) in DATASETS.items():
        d = root / name
        d.mkdir()
        seqs = []
        # Written in reverse so file-name order, not creation order, is what must count.
        shards = [random_sequences(rng, dtype, c) for c in shard_counts]
        for i in reversed(range(len(shards))):
            write_indexed_dataset(str(d / ("corpus_%02d_text_document" % i)), shards[i], dtype)
        for s in shards:
            seqs.extend(s)
        expected[name] = seqs
        outputs[name] = (d, index(d, "megatron"), index(d, "megatron"))
    with serving({name: root / name for name in DATASETS}) as daemon:
        yield Served(daemon.url, expected, outputs, daemon.lines)


def test_index_reports_the_sequences_and_reuses_an_unchanged_folder(megatron_served):
    for name, (folder, first, second) in megatron_served.index_output.items():
        n = len(megatron_served.expected[name])
        assert "format megatron, 2 shards, %d samples" % n in first, first
        assert second.startswith("manifest unchanged"), second
        manifest = json.loads((folder / "sluice-manifest.json").read_text())
        assert manifest["params"] == {"dtype": DATASETS[name][0].name}
        assert [s["path"] for s in manifest["shards"]] == [
            "corpus_00_text_document.bin", "corpus_01_text_document.bin"]
        assert manifest["shards"][0]["companions"][0]["path"] == "corpus_00_text_document.idx"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_two_ranks_read_every_sequence_exactly_once_byte_for_byte(megatron_served, name):
    dtype, arrow_type, _ = DATASETS[name]
    expected = megatron_served.expected[name]
    seen = collections.Counter()
    batches_per_rank = []
    for rank in range(WORLD):
        req = {"dataset": name, "rank": rank, "world_size": WORLD, "batch_size": BATCH,
               "shuffle": "global", "seed": 3}
        info, batches = read_stream(megatron_served.url, req)
        assert info.schema.field("tokens").type == pa.list_(
            pa.field("item", arrow_type, nullable=False)), info.schema
        batches_per_rank.append(len(batches))
        for batch, meta in batches:
            assert 0 < batch.num_rows <= BATCH
            padded = int(meta.get("padded", 0))
            ids = batch.column("sample_id").to_numpy().astype(np.int64)
            col = batch.column("tokens")
            assert col.type.value_type == arrow_type
            assert col.null_count == 0
            offsets = col.offsets.to_numpy()
            values = col.values.to_numpy(zero_copy_only=False)
            for row, sid in enumerate(ids):
                got = values[offsets[row]:offsets[row + 1]]
                want = expected[sid]
                assert got.dtype == dtype
                assert got.tobytes() == want.tobytes(), (
                    "%s sample_id=%d: got %d elements %r, want %d elements %r"
                    % (name, sid, len(got), got[:8], len(want), want[:8]))
            for sid in ids[:batch.num_rows - padded]:
                seen[int(sid)] += 1
    assert batches_per_rank[0] == batches_per_rank[1], batches_per_rank
    assert sorted(seen) == list(range(len(expected))), "missing: %s" % sorted(
        set(range(len(expected))) - set(seen))
    assert set(seen.values()) == {1}, [s for s, c in seen.items() if c != 1]
    assert any(len(s) == 0 for s in expected)  # zero-length sequences were among them
