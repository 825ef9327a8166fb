"""Batch conversion, protocol helpers and argument handling; no daemon needed."""

import json
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from sluice import _convert, _protocol


def token_batch(n=5, width=4, value_type=pa.uint16()):
    flat = np.arange(n * width) % 60000
    tokens = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=value_type), width)
    return pa.RecordBatch.from_arrays(
        [pa.array(np.arange(n), type=pa.uint64()), tokens,
         pa.array([b"x%d" % i for i in range(n)], type=pa.binary()),
         pa.array(["s%d" % i for i in range(n)]),
         pa.array(np.linspace(0, 1, n), type=pa.float32()),
         pa.array([i % 2 == 0 for i in range(n)]),
         pa.array(np.arange(n), type=pa.uint16())],
        names=["sample_id", "tokens", "raw", "text", "weight", "keep", "small"])


def test_numpy_conversion():
    out = _convert.batch_to_dict(token_batch(), as_torch=False)
    assert out["tokens"].dtype == np.int64 and out["tokens"].shape == (5, 4)
    np.testing.assert_array_equal(out["tokens"].reshape(-1), np.arange(20))
    assert out["sample_id"].dtype == np.int64
    assert out["raw"] == [b"x%d" % i for i in range(5)]
    assert out["text"] == ["s%d" % i for i in range(5)]
    assert out["weight"].dtype == np.float32
    assert out["keep"].dtype == np.bool_
    assert out["small"].dtype == np.int32


def test_torch_conversion():
    torch = pytest.importorskip("torch")
    out = _convert.batch_to_dict(token_batch(value_type=pa.uint32()))
    assert out["tokens"].dtype == torch.int64 and tuple(out["tokens"].shape) == (5, 4)
    assert out["sample_id"].dtype == torch.int64
    assert out["weight"].dtype == torch.float32
    assert out["keep"].dtype == torch.bool
    assert out["small"].dtype == torch.int32
    # int64 values read zero-copy from Arrow are read-only; the tensor must still be usable.
    batch = pa.RecordBatch.from_arrays([pa.array(np.arange(3), type=pa.int64())], names=["x"])
    x = _convert.batch_to_dict(batch)["x"]
    x += 1
    assert x.tolist() == [1, 2, 3]


def test_sliced_fixed_size_list_keeps_its_rows():
    sliced = token_batch(n=6).slice(2, 3)
    out = _convert.batch_to_dict(sliced, as_torch=False)
    np.testing.assert_array_equal(out["tokens"], np.arange(8, 20).reshape(3, 4))
    np.testing.assert_array_equal(out["sample_id"], [2, 3, 4])


def test_variable_lists():
    uniform = pa.array([[1, 2], [3, 4], [5, 6]], type=pa.list_(pa.uint16()))
    ragged = pa.array([[1], [2, 3], []], type=pa.list_(pa.int32()))
    batch = pa.RecordBatch.from_arrays([uniform, ragged], names=["u", "r"]).slice(1)
    out = _convert.batch_to_dict(batch, as_torch=False)
    np.testing.assert_array_equal(out["u"], [[3, 4], [5, 6]])
    assert out["u"].dtype == np.int64
    assert [a.tolist() for a in out["r"]] == [[2, 3], []]


@pytest.mark.parametrize("url,location", [
    ("grpc://127.0.0.1:8815", "grpc://127.0.0.1:8815"),
    ("127.0.0.1:8815", "grpc://127.0.0.1:8815"),
    ("localhost:1", "grpc://localhost:1"),
    ("grpc+unix:///tmp/sluice.sock", "grpc+unix:///tmp/sluice.sock"),
])
def test_locations(url, location):
    assert _protocol.normalize_location(url) == location


@pytest.mark.parametrize("url", ["", "127.0.0.1", "host:port", None])
def test_bad_locations(url):
    with pytest.raises(ValueError):
        _protocol.normalize_location(url)


def test_descriptor_holds_every_key():
    cmd = json.loads(_protocol.descriptor_command(
        dataset="d", rank=1, world_size=2, batch_size=3, seed=4, epoch=5, shuffle="block",
        drop_last=True, start_cursor=12, delivery="auto", columns=("tokens",)))
    assert cmd == {"dataset": "d", "rank": 1, "world_size": 2, "batch_size": 3, "seed": 4,
                   "epoch": 5, "shuffle": "block", "drop_last": True, "start_cursor": 12,
                   "delivery": "auto", "columns": ["tokens"]}
    cmd = json.loads(_protocol.descriptor_command(
        dataset="d", rank=0, world_size=1, batch_size=3, seed=0, epoch=0, shuffle="global",
        drop_last=False, start_cursor=0, delivery="cuda", columns=None, shm_token="t", device=1))
    assert cmd["device"] == 1 and cmd["shm_token"] == "t" and cmd["delivery"] == "cuda"


def test_metadata():
    meta = _protocol.parse_batch_metadata(pa.py_buffer(b'{"step": 3, "steps": 4, "delivery": "cpu"}'))
    assert _protocol.is_last_step(meta)
    assert not _protocol.is_last_step({"step": 2, "steps": 4})
    assert _protocol.parse_batch_metadata(None) == {}
    _protocol.check_readable(meta)
    _protocol.check_readable({"delivery": "shm"})
    _protocol.check_readable({"delivery": "cuda"})
    with pytest.raises(NotImplementedError, match="gpu"):
        _protocol.check_readable({"delivery": "gpu"})


@pytest.mark.parametrize("kw", [dict(batch_size=8.5), dict(batch_size="8"), dict(rank=1.0),
                                dict(seed=True)])
def test_arguments_must_be_integers(kw):
    import sluice
    args = dict(url="127.0.0.1:1", dataset="d", batch_size=8, rank=0, world_size=2)
    args.update(kw)
    with pytest.raises(TypeError, match=next(iter(kw))):
        sluice.Dataset(**args)


def test_rank_and_world_size_from_torch_distributed(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import torch.distributed as dist
    import sluice
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    monkeypatch.setenv("RANK", "5")  # torch.distributed, once initialized, wins over these
    monkeypatch.setenv("WORLD_SIZE", "9")
    dist.init_process_group("gloo", init_method="file://%s" % (tmp_path / "pg"), rank=0,
                            world_size=1)
    try:
        ds = sluice.Dataset("127.0.0.1:1", "d", 8)
        assert (ds.rank, ds.world_size) == (0, 1)
    finally:
        dist.destroy_process_group()
    ds = sluice.Dataset("127.0.0.1:1", "d", 8)
    assert (ds.rank, ds.world_size) == (5, 9)


def test_read_ahead_hands_out_items_then_the_error_in_order_and_closes_early():
    from sluice.dataset import _Ahead

    def items(n, fail, cleaned):
        def make(on_reader):
            def gen():
                try:
                    for i in range(n):
                        yield i
                    if fail:
                        raise RuntimeError("stream broke after %d" % n)
                finally:
                    cleaned.append(True)
            return gen()
        return make

    cleaned = []
    ahead = _Ahead(items(5, True, cleaned), 2)
    got = []
    with pytest.raises(RuntimeError, match="stream broke after 5"):
        for x in ahead:
            got.append(x)
    ahead.close()
    assert got == [0, 1, 2, 3, 4] and cleaned == [True]

    cleaned = []
    ahead = _Ahead(items(10**9, False, cleaned), 2)  # endless: closed after three
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    thread = ahead._thread
    ahead.close()
    assert cleaned == [True] and not thread.is_alive()


def _threads_of(n, fail=False):
    """A read-ahead over 0..n-1 (then an error when ``fail``), recording which thread read each
    item, and that list."""
    from sluice.dataset import _Ahead
    readers = []

    def make(on_reader):
        def gen():
            for i in range(n):
                readers.append(threading.get_ident())
                yield i
            if fail:
                raise RuntimeError("stream broke after %d" % n)
        return gen()
    return _Ahead(make, 2), readers


def test_read_ahead_reads_on_the_consumers_thread_while_it_comes_right_back(monkeypatch):
    from sluice.dataset import _Ahead
    # "Right back" and "away" set far apart, so a loaded machine's pauses cannot blur them.
    monkeypatch.setattr(_Ahead, "AWAY_S", 0.5)
    ahead, readers = _threads_of(100)
    me = threading.get_ident()
    got = [next(ahead) for _ in range(_Ahead.QUICK_RETURNS + 1)]  # comes right back each time
    assert not ahead.threaded
    got += [next(ahead) for _ in range(10)]
    assert readers[0] != me and readers[-1] == me  # the last ones read here
    # Away between batches (a training step): the thread reads ahead again.
    monkeypatch.setattr(_Ahead, "AWAY_S", 0.001)
    for _ in range(_Ahead.SLOW_RETURNS + 3):
        time.sleep(0.01)
        got.append(next(ahead))
    assert ahead.threaded and readers[-1] != me
    got += list(ahead)
    ahead.close()
    assert got == list(range(100))  # every item once, in order, across both switches
    with pytest.raises(StopIteration):
        next(ahead)  # stays ended


def test_read_ahead_raises_the_streams_error_in_order_when_reading_on_the_consumers_thread(
        monkeypatch):
    from sluice.dataset import _Ahead
    monkeypatch.setattr(_Ahead, "AWAY_S", 0.5)
    ahead, readers = _threads_of(60, fail=True)
    got = [next(ahead) for _ in range(_Ahead.QUICK_RETURNS + 1)]
    assert not ahead.threaded
    with pytest.raises(RuntimeError, match="stream broke after 60"):
        for x in ahead:
            got.append(x)
    assert not ahead.threaded and readers[-1] == threading.get_ident()
    assert got == list(range(60))
    with pytest.raises(RuntimeError, match="stream broke after"):
        next(ahead)  # the same error again
    ahead.close()


def test_reconnect_tries_until_its_timeout_while_the_daemon_is_unreachable(monkeypatch):
    from sluice import dataset
    clock = [100.0]
    monkeypatch.setattr(dataset.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(dataset.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    r = dataset._Reconnect(5.0)
    tries = 0
    while r.again((0, 32), opened=False):
        tries += 1
    assert 4 <= tries <= 8  # 0.1, 0.2, 0.4, 0.8, 1.6, 2 s ... until 5 s have passed
    assert clock[0] <= 105.0 + 1e-9
    assert "reconnect_timeout=5 s" in r.why_not


def test_reconnect_gives_up_when_a_reopened_stream_breaks_again_at_the_same_position(
        monkeypatch):
    from sluice import dataset
    monkeypatch.setattr(dataset.time, "sleep", lambda s: None)
    r = dataset._Reconnect(60.0)
    assert r.again((0, 32), opened=True)  # broke off mid-stream: the daemon may be restarting
    assert r.again((0, 32), opened=False)  # refused while it starts
    assert not r.again((0, 32), opened=True)  # opened there and broke again: not a restart
    assert "not a restart" in r.why_not
    r.progressed()  # a batch came in between
    assert r.again((0, 48), opened=True)
    assert r.again((0, 64), opened=True)  # a later position is a new break


def test_reconnect_timeout_zero_never_reconnects():
    from sluice import dataset
    r = dataset._Reconnect(0)
    assert not r.again((0, 0), opened=False)
    assert "reconnect_timeout=0" in r.why_not


def test_reconnect_gives_up_when_the_daemon_answers_and_refuses_the_stream(monkeypatch):
    from sluice import dataset
    monkeypatch.setattr(dataset.time, "sleep", lambda s: None)
    r = dataset._Reconnect(60.0)
    assert r.again((0, 32), opened=True)  # broke off
    assert not r.again((0, 32), opened=False, refused=True)  # the restarted daemon says no
    assert "refused" in r.why_not


def test_read_ahead_goes_on_after_a_stop_left_halfway():
    ahead, _ = _threads_of(30)
    got = [next(ahead)]
    ahead._pause = True  # what a stop sets before it waits: an interrupt there leaves it so
    got += list(ahead)
    ahead.close()
    assert got == list(range(30))
