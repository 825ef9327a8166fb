"""sluice.Dataset against the session's daemon."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

import sluice

torch = pytest.importorskip("torch")


def make(served, rank=0, world_size=1, batch_size=8, **kw):
    return sluice.Dataset(served.url, served.name, batch_size, rank=rank, world_size=world_size,
                          **kw)


def ids(batch):
    return batch["sample_id"].tolist()


def epoch_ids(datasets):
    """Per rank, the list of per-step sample-id lists of one full iteration."""
    return [[ids(b) for b in ds] for ds in datasets]


def test_version():
    assert sluice.__version__ == "0.1.0"


def test_batches_are_dicts_of_int64_tensors(served):
    ds = make(served, batch_size=8)
    assert isinstance(ds, torch.utils.data.IterableDataset)
    batch = next(iter(ds))
    assert set(batch) == {"sample_id", "tokens"}
    assert batch["tokens"].dtype == torch.int64
    assert batch["tokens"].shape == (8, served.seq_len)
    assert batch["sample_id"].dtype == torch.int64
    assert batch["sample_id"].shape == (8,)
    np.testing.assert_array_equal(batch["tokens"].numpy(),
                                  served.expected_tokens(batch["sample_id"].numpy()))
    assert ds.last_metadata["step"] == 0
    # auto: in place from shared memory on the daemon's host (the Python stand-in has no shm)
    assert ds.last_metadata["delivery"] == (
        "cpu" if os.environ.get("SLUICE_TEST_SERVER") == "python" else "shm")


def test_uint32_tokens_become_int64(served):
    from conftest import expected_tokens_u32
    ds = sluice.Dataset(served.url, served.name_u32, 9)
    seen = []
    for batch in ds:
        assert batch["tokens"].dtype == torch.int64
        np.testing.assert_array_equal(batch["tokens"].numpy(),
                                      expected_tokens_u32(batch["sample_id"].numpy()))
        seen.extend(ids(batch))
    assert set(seen) == set(range(served.n_u32))


def test_url_without_scheme(served):
    host_port = served.url.split("://", 1)[1]
    ds = sluice.Dataset(host_port, served.name, 4)
    assert len(ids(next(iter(ds)))) == 4


def test_in_a_dataloader(served):
    loader = torch.utils.data.DataLoader(make(served, world_size=2, rank=1, batch_size=16),
                                         batch_size=None)
    n = 0
    for batch in loader:
        assert batch["tokens"].shape == (16, served.seq_len)
        assert batch["tokens"].dtype == torch.int64
        n += 1
    assert n == math.ceil(served.n / 32)


def test_dataloader_with_workers_is_refused(served):
    loader = torch.utils.data.DataLoader(make(served), batch_size=None, num_workers=2)
    with pytest.raises(ValueError, match="num_workers=2"):
        next(iter(loader))


@pytest.mark.parametrize("drop_last", [False, True])
def test_four_ranks_read_every_sample_once(served, drop_last):
    world_size, batch_size = 4, 8
    g = world_size * batch_size
    datasets = [make(served, r, world_size, batch_size, drop_last=drop_last, seed=3)
                for r in range(world_size)]
    seen = []
    for ds in datasets:
        batches = list(ds)
        assert len(batches) == (served.n // g if drop_last else math.ceil(served.n / g))
        for b in batches[:-1]:
            seen.extend(ids(b))
        padded = ds.last_metadata["padded"]
        seen.extend(ids(batches[-1])[:batch_size - padded])
        assert all(len(ids(b)) == batch_size for b in batches)
    if drop_last:
        assert len(seen) == len(set(seen)) == (served.n // g) * g
    else:
        assert sorted(seen) == list(range(served.n))


def test_set_epoch_changes_the_order(served):
    ds = make(served, batch_size=32)
    ds.set_epoch(0)
    e0 = [ids(b) for b in ds]
    ds.set_epoch(1)
    e1 = [ids(b) for b in ds]
    assert e0 != e1
    assert {i for b in e0 for i in b} == {i for b in e1 for i in b} == set(range(served.n))
    ds.set_epoch(0)
    assert [ids(b) for b in ds] == e0


@pytest.mark.parametrize("k", [1, 7])
def test_resume_from_state_dict(served, k):
    world_size, batch_size = 2, 8
    full = [ids(b) for b in make(served, 1, world_size, batch_size, seed=9, epoch=2)]

    ds = make(served, 1, world_size, batch_size, seed=9, epoch=2)
    it = iter(ds)
    for _ in range(k):
        next(it)
    state = json.loads(json.dumps(ds.state_dict()))  # survives a JSON checkpoint
    it.close()
    assert state["cursor"] == ds.last_metadata["cursor"]
    assert state["version"] == 1 and state["epoch"] == 2 and state["seed"] == 9

    resumed = make(served, 1, world_size, batch_size)  # seed/epoch come from the state
    resumed.load_state_dict(state)
    assert [ids(b) for b in resumed] == full[k:]


def test_state_dict_before_any_batch(served):
    state = make(served).state_dict()
    assert state["cursor"] == 0
    for key in ("dataset", "seed", "epoch", "shuffle", "drop_last", "batch_size", "world_size"):
        assert key in state


def test_breaking_out_and_iterating_again_continues(served):
    ds = make(served, batch_size=64, seed=4)
    full = [ids(b) for b in make(served, batch_size=64, seed=4)]
    got = []
    for b in ds:
        got.append(ids(b))
        if len(got) == 3:
            break
    got.extend(ids(b) for b in ds)
    assert got == full


def test_resume_at_end_of_epoch_starts_the_next(served):
    ds = make(served, batch_size=100, seed=1)
    list(ds)
    state = ds.state_dict()
    assert state["epoch"] == 0
    resumed = make(served, batch_size=100)
    resumed.load_state_dict(state)
    first = ids(next(iter(resumed)))
    assert resumed.epoch == 1
    assert first == ids(next(iter(make(served, batch_size=100, seed=1, epoch=1))))


def test_resume_at_end_of_epoch_from_cursor_only(served):
    """A checkpoint that carries only the cursor (as a non-Python client might write it)."""
    ds = make(served, batch_size=100, seed=1)
    list(ds)
    state = ds.state_dict()
    del state["epoch_done"]
    resumed = make(served, batch_size=100)
    resumed.load_state_dict(state)
    first = ids(next(iter(resumed)))
    assert first == ids(next(iter(make(served, batch_size=100, seed=1, epoch=1))))


def test_set_epoch_after_load_keeps_the_position(served):
    full = [ids(b) for b in make(served, batch_size=32, seed=2, epoch=5)]
    ds = make(served, batch_size=32, seed=2, epoch=5)
    it = iter(ds)
    next(it), next(it)
    state = ds.state_dict()
    it.close()
    resumed = make(served, batch_size=32)
    resumed.load_state_dict(state)
    resumed.set_epoch(5)  # what a training loop does at the top of each epoch
    assert [ids(b) for b in resumed] == full[2:]


def test_set_epoch_after_load_of_a_finished_epoch(served):
    """A loop that labels the resumed epoch as the checkpoint did: nothing is left of it."""
    ds = make(served, batch_size=100, seed=6, epoch=3)
    list(ds)
    resumed = make(served, batch_size=100)
    resumed.load_state_dict(ds.state_dict())
    resumed.set_epoch(3)
    assert list(resumed) == []
    resumed.set_epoch(4)
    assert [ids(b) for b in resumed] == [ids(b) for b in make(served, batch_size=100, seed=6,
                                                               epoch=4)]


def test_iterating_again_without_set_epoch_reads_the_next_epoch(served):
    ds = make(served, batch_size=100, seed=8)
    list(ds)
    assert [ids(b) for b in ds] == [ids(b) for b in make(served, batch_size=100, seed=8, epoch=1)]
    assert ds.epoch == 1


def test_elastic_resume_with_another_world_size(served):
    """Checkpoint at W=4, B=8; resume at W=2, B=16: the same global batches follow."""
    k = 6

    def step_unions(per_rank):
        return [sorted(sum((r[s] for r in per_rank), [])) for s in range(len(per_rank[0]))]

    uninterrupted = step_unions(epoch_ids(make(served, r, 4, 8, seed=21) for r in range(4)))

    first = [make(served, r, 4, 8, seed=21) for r in range(4)]
    before = []
    for ds in first:
        it = iter(ds)
        before.append([ids(next(it)) for _ in range(k)])
        it.close()
    state = first[0].state_dict()
    assert all(ds.state_dict()["cursor"] == state["cursor"] for ds in first)

    second = [make(served, r, 2, 16) for r in range(2)]
    for ds in second:
        ds.load_state_dict(state)
    after = step_unions(epoch_ids(second))
    assert step_unions(before) + after == uninterrupted


def test_columns(served):
    batch = next(iter(make(served, columns=["tokens"])))
    assert "tokens" in batch
    assert batch["tokens"].shape == (8, served.seq_len)


def test_unknown_dataset_names_it(served):
    ds = sluice.Dataset(served.url, "no-such-dataset", 8, rank=0, world_size=1)
    with pytest.raises(pa.ArrowKeyError) as e:  # the daemon's NOT_FOUND, as pyarrow raises it
        next(iter(ds))
    assert "no-such-dataset" in str(e.value)


def test_bad_rank_names_the_field(served):
    ds = make(served, rank=5, world_size=4)
    with pytest.raises(pa.ArrowInvalid) as e:  # INVALID_ARGUMENT, as pyarrow raises it
        next(iter(ds))
    assert "rank" in str(e.value)


def test_rank_and_world_size_from_the_environment(served, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = sluice.Dataset(served.url, served.name, 8)
    assert (ds.rank, ds.world_size) == (1, 3)
    assert ds.state_dict()["world_size"] == 3


def test_abandoned_streams_leave_the_daemon_serving(served):
    for _ in range(20):
        for i, _batch in enumerate(make(served, batch_size=4)):
            if i == 2:
                break
    assert sum(1 for _ in make(served, batch_size=64)) == math.ceil(served.n / 64)


def test_without_torch_batches_are_numpy(served):
    """torch is optional: with it hidden, Dataset is a plain iterable of numpy arrays."""
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # import torch now raises ImportError
        import numpy as np, sluice
        ds = sluice.Dataset(%r, %r, 8, rank=0, world_size=1)
        batch = next(iter(ds))
        assert type(batch["tokens"]) is np.ndarray, type(batch["tokens"])
        assert batch["tokens"].dtype == np.int64 and batch["tokens"].shape == (8, %d)
        assert batch["sample_id"].dtype == np.int64
        print("ok")
    """ % (served.url, served.name, served.seq_len))
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout
