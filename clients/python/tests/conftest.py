"""One Sluice daemon for the whole test session, serving token datasets whose content is a known
function of the sample id, so every row can be checked.

The daemon is the repo's launcher (``sluice serve``), or ``$SLUICE_LAUNCHER``.
``SLUICE_TEST_SERVER=python`` serves the same files from tests/_reference_server.py instead, for
working on the client without a Java build.
"""

import os

import numpy as np
import pytest

from sluice_daemon import index, serving

SEQ_LEN = 16
SHARD_SAMPLES = (300, 250, 203)  # 753 in all: no power of two, so batches rarely divide it
SHARD_SAMPLES_U32 = (40, 57)


def expected_tokens_u16(sample_ids, seq_len=SEQ_LEN):
    """Token j of global sample s is (s*31 + j) % 65536."""
    s = np.asarray(sample_ids, dtype=np.int64)[:, None]
    return (s * 31 + np.arange(seq_len)) % 65536


def expected_tokens_u32(sample_ids):
    """Token j of global sample s is (s*100003 + j + 70000) % 2**32: values past uint16."""
    s = np.asarray(sample_ids, dtype=np.int64)[:, None]
    return (s * 100003 + np.arange(SEQ_LEN) + 70000) % (1 << 32)


class Served(object):
    """What the session's daemon serves."""

    def __init__(self, url, launcher_output, dataset_dir=None):
        self.url = url
        self.dataset_dir = dataset_dir  # tok16's folder, for tests that start their own daemon
        self.name = "tok16"
        self.n = sum(SHARD_SAMPLES)
        self.seq_len = SEQ_LEN
        self.name_u32 = "tok32"
        self.n_u32 = sum(SHARD_SAMPLES_U32)
        self.output = launcher_output  # the daemon's recent output lines, for failure messages

    def expected_tokens(self, sample_ids):
        return expected_tokens_u16(sample_ids)


def write_shards(root, shard_samples, fn, dtype):
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


def _index(root, dtype):
    index(root, "tokens", "--dtype", dtype, "--seq-len", str(SEQ_LEN))


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("sluice-data")
    d16, d32 = root / "tok16", root / "tok32"
    paths16 = write_shards(d16, SHARD_SAMPLES, expected_tokens_u16, np.uint16)
    paths32 = write_shards(d32, SHARD_SAMPLES_U32, expected_tokens_u32, np.uint32)

    if os.environ.get("SLUICE_TEST_SERVER") == "python":
        from _reference_server import TokenData, start
        server, url = start({"tok16": TokenData(paths16, np.uint16, SEQ_LEN),
                             "tok32": TokenData(paths32, np.uint32, SEQ_LEN)})
        yield Served(url, [])
        server.shutdown()
        return

    _index(d16, "uint16")
    _index(d32, "uint32")
    with serving({"tok16": d16, "tok32": d32}) as daemon:
        yield Served(daemon.url, daemon.lines, d16)


class LongData(object):
    """A token dataset too long for the rest of an epoch to sit in a connection's buffers (HTTP/2
    windows, socket buffers, the daemon's write queue: a few MiB at most on loopback), so a daemon
    stopped a few batches in is stopped mid-stream; tok16's whole epoch would fit in them."""

    SEQ_LEN = 4096
    SAMPLES = (3000, 2500, 2692)  # 8192 samples of 8 KiB: 64 MiB

    def __init__(self, dataset_dir):
        self.dataset_dir = dataset_dir
        self.n = sum(self.SAMPLES)

    def expected_tokens(self, sample_ids):
        return expected_tokens_u16(sample_ids, self.SEQ_LEN)


@pytest.fixture(scope="session")
def long16(tmp_path_factory):
    root = tmp_path_factory.mktemp("sluice-long") / "long16"
    write_shards(root, LongData.SAMPLES,
                 lambda ids: expected_tokens_u16(ids, LongData.SEQ_LEN), np.uint16)
    index(root, "tokens", "--dtype", "uint16", "--seq-len", str(LongData.SEQ_LEN))
    return LongData(root)
