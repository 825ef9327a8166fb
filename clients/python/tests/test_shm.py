"""shm delivery: batches read in place from the daemon's shared memory, against the real daemon."""

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow.flight as flight
import pytest

import sluice
from sluice import _shm

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(os.environ.get("SLUICE_TEST_SERVER") == "python",
                                reason="the Python stand-in server has no shm delivery")


def make(served, rank=0, world_size=1, batch_size=8, **kw):
    return sluice.Dataset(served.url, served.name, batch_size, rank=rank, world_size=world_size,
                          **kw)


def action(served, name):
    """The daemon's JSON answer to the Flight action ``name``."""
    client = flight.FlightClient(served.url)
    try:
        return json.loads(list(client.do_action(flight.Action(name, b"")))[0].body.to_pybytes())
    finally:
        client.close()


def shm_folder(served):
    answer = action(served, "shm_probe")
    assert answer["available"], answer
    return os.path.dirname(answer["path"])


def live_regions(served):
    folder = shm_folder(served)
    return [f for f in os.listdir(folder) if f != "probe"]


def daemon_stats(served):
    return action(served, "stats")


def await_no_regions(served, timeout_s=10):
    """Every shm region gone and, with no stream left, every Arrow buffer given back."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = daemon_stats(served)
        if not live_regions(served) and s["shm_regions"] == 0 and (
                s["streams"] > 0 or s["allocated_bytes"] == 0):
            break
        time.sleep(0.05)
    assert live_regions(served) == []
    s = daemon_stats(served)
    assert s["shm_regions"] == 0, s
    if s["streams"] == 0:
        assert s["allocated_bytes"] == 0, s


def test_auto_takes_shm_on_the_daemons_host(served):
    ds = make(served)
    batch = next(iter(ds))
    assert ds.last_metadata["delivery"] == "shm"
    assert ds.shm_unavailable_cause is None
    assert batch["tokens"].dtype == torch.int64
    assert np.array_equal(batch["tokens"].numpy(), served.expected_tokens(batch["sample_id"]))


@pytest.mark.parametrize("shuffle", ["global", "block"])
def test_four_ranks_read_every_sample_once_over_shm(served, shuffle):
    world_size, batch_size = 4, 8
    seen = []
    for r in range(world_size):
        ds = make(served, r, world_size, batch_size, seed=5, shuffle=shuffle, delivery="shm")
        batches = list(ds)
        assert len(batches) == math.ceil(served.n / (world_size * batch_size))
        for b in batches:
            assert np.array_equal(b["tokens"].numpy(), served.expected_tokens(b["sample_id"]))
        for b in batches[:-1]:
            seen.extend(b["sample_id"].tolist())
        seen.extend(batches[-1]["sample_id"].tolist()[:batch_size - ds.last_metadata["padded"]])
        assert ds.last_metadata["delivery"] == "shm"
    assert sorted(seen) == list(range(served.n))
    await_no_regions(served)


def test_eight_concurrent_ranks_over_shm(served):
    world_size, batch_size = 8, 4
    results = [None] * world_size

    def run(r):
        ds = make(served, r, world_size, batch_size, seed=11, delivery="shm")
        got = []
        for b in ds:
            assert np.array_equal(b["tokens"].numpy(), served.expected_tokens(b["sample_id"]))
            got.append(b["sample_id"].tolist())
        results[r] = (got, ds.last_metadata["padded"])

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    seen = []
    for got, padded in results:
        for step in got[:-1]:
            seen.extend(step)
        seen.extend(got[-1][:batch_size - padded])
    assert sorted(seen) == list(range(served.n))
    await_no_regions(served)


def test_shm_and_cpu_give_the_same_batches(served):
    cpu = [b["sample_id"].tolist() for b in make(served, 1, 3, 7, seed=2, delivery="cpu")]
    shm = [b["sample_id"].tolist() for b in make(served, 1, 3, 7, seed=2, delivery="shm")]
    assert cpu == shm


def test_batches_kept_past_the_next_stay_intact(served):
    """Every batch owns its memory: the daemon reuses a slot once the client moved on."""
    kept = list(make(served, batch_size=4, delivery="shm"))
    for b in kept:
        assert np.array_equal(b["tokens"].numpy(), served.expected_tokens(b["sample_id"]))


def test_resume_over_shm_with_another_world_size(served):
    ds = make(served, 0, 4, 6, seed=9, delivery="shm")
    it = iter(ds)
    for _ in range(5):
        next(it)
    state = ds.state_dict()
    state["world_size"] = 2
    resumed = make(served, 0, 2, 12, seed=9, delivery="shm")
    resumed.load_state_dict(state)
    straight = [b["sample_id"].tolist() for b in make(served, 0, 2, 12, seed=9, delivery="cpu")]
    k = state["cursor"] // 24
    assert next(iter(resumed))["sample_id"].tolist() == straight[k]


def test_a_client_killed_mid_stream_gives_its_region_back(served):
    code = textwrap.dedent("""
        import os, signal, sluice
        ds = sluice.Dataset(%r, %r, 2, rank=0, world_size=1, delivery="shm")
        for i, b in enumerate(ds):
            if i == 3:
                print("read", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
    """ % (served.url, served.name))
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120)
    assert out.returncode == -9 and "read" in out.stdout, out.stdout
    await_no_regions(served)
    # and the daemon goes on serving shm
    assert sum(1 for _ in make(served, batch_size=64, delivery="shm")) == math.ceil(served.n / 64)


def test_shm_where_the_probe_cannot_be_read_says_why(served, monkeypatch):
    def unreadable(client, options=None, answer_out=None):
        return None, "cannot read the daemon's shm probe: permission denied"
    monkeypatch.setattr(_shm, "probe", unreadable)
    with pytest.raises(RuntimeError, match="permission denied"):
        next(iter(make(served, delivery="shm")))
    ds = make(served)  # auto falls back to cpu and says why
    next(iter(ds))
    assert ds.last_metadata["delivery"] == "cpu"
    assert "permission denied" in ds.shm_unavailable_cause


def test_plain_pyarrow_asking_auto_gets_batches_in_the_stream(served):
    client = flight.FlightClient(served.url)
    req = {"dataset": served.name, "rank": 0, "world_size": 1, "batch_size": 8,
           "delivery": "auto"}
    info = client.get_flight_info(flight.FlightDescriptor.for_command(json.dumps(req)))
    chunk = client.do_get(info.endpoints[0].ticket).read_chunk()
    assert json.loads(chunk.app_metadata.to_pybytes())["delivery"] == "cpu"
    assert chunk.data.num_rows == 8
    client.close()


def test_plain_pyarrow_can_read_shm_batches_in_place(served):
    """The protocol needs no Sluice code: probe, token, descriptor, and pyarrow's IPC reader."""
    import pyarrow as pa
    client = flight.FlightClient(served.url)
    probe = json.loads(list(client.do_action(flight.Action("shm_probe", b"")))[0].body.to_pybytes())
    with open(probe["path"]) as f:
        token = f.read()
    req = {"dataset": served.name, "rank": 0, "world_size": 1, "batch_size": 8,
           "delivery": "shm", "shm_token": token}
    info = client.get_flight_info(flight.FlightDescriptor.for_command(json.dumps(req)))
    reader = client.do_get(info.endpoints[0].ticket)
    chunk = reader.read_chunk()
    meta = json.loads(chunk.app_metadata.to_pybytes())
    assert chunk.data is None and meta["delivery"] == "shm"
    slot = meta["shm"]
    with open(slot["region"], "rb") as f:
        f.seek(slot["offset"])
        message = pa.ipc.read_message(pa.py_buffer(f.read(slot["length"])))
    batch = pa.ipc.read_record_batch(message, reader.schema)
    tokens = batch.column("tokens").values.to_numpy().reshape(8, -1)
    assert np.array_equal(tokens, served.expected_tokens(batch.column("sample_id").to_numpy()))
    reader.cancel()
    client.close()


def test_cuda_without_a_gpu_is_refused_with_the_cause(served):
    # The daemon's host has no usable GPU here; an explicit cuda is refused, naming why, and the
    # daemon goes on serving (auto never takes cuda without a GPU).
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this host has an NVIDIA driver: the refusal is for hosts without one")
    with pytest.raises(flight.FlightUnavailableError, match="delivery=cuda: no usable GPU"):
        next(iter(make(served, delivery="cuda")))
    batch = next(iter(make(served, delivery="auto")))
    assert batch["sample_id"].numel() == 8


def test_auto_says_why_it_did_not_take_cuda(served):
    # The shm probe's answer says whether the daemon has a GPU; with none, auto takes shm and the
    # Dataset keeps the daemon's reason.
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this host has an NVIDIA driver")
    answer = action(served, "shm_probe")
    assert answer["cuda"]["available"] is False
    assert answer["cuda"]["cause"].startswith("no CUDA driver"), answer
    ds = make(served, delivery="auto")
    next(iter(ds))
    assert ds.last_metadata["delivery"] == "shm"
    assert ds.cuda_unavailable_cause == answer["cuda"]["cause"]


def test_a_device_this_process_cannot_use_is_refused_up_front(served):
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    from sluice import _cuda
    assert _cuda.unavailable_cause().startswith("torch sees no CUDA device")
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        make(served, device="cuda:0")
    with pytest.raises(ValueError, match="must be a CUDA device"):
        make(served, device="cpu")
