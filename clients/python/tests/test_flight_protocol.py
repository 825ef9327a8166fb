"""The daemon's Flight protocol read with plain pyarrow.flight, no sluice code: what any Flight
client can rely on (DESIGN.md, "Contracts")."""

import collections
import math

import numpy as np
import pyarrow as pa
import pytest

from flight_helpers import flight_info, ids_of, read_all_ranks, read_rank, request, tokens_of

META_KEYS = {"epoch", "step", "cursor", "delivery", "padded", "steps"}


def test_flight_info_has_schema_and_one_endpoint(served):
    info = flight_info(served.url, request(served.name, 0, 2, 8))
    assert len(info.endpoints) == 1
    schema = info.schema
    assert schema.field("sample_id").type == pa.uint64()
    tokens = schema.field("tokens").type
    assert pa.types.is_fixed_size_list(tokens), tokens
    assert tokens.list_size == served.seq_len
    assert tokens.value_type == pa.uint16()


@pytest.mark.parametrize("world_size,batch_size", [(2, 8), (4, 8), (4, 5)])
def test_ranks_cover_every_sample_once(served, world_size, batch_size):
    ranks = read_all_ranks(served.url, served.name, world_size, batch_size)
    g = world_size * batch_size
    steps = math.ceil(served.n / g)
    counts = collections.Counter()
    padded_total = 0
    for rank, batches in enumerate(ranks):
        assert len(batches) == steps, "rank=%d" % rank
        for i, (batch, meta) in enumerate(batches):
            assert batch.num_rows == batch_size  # drop_last=false pads the tail to a full batch
            padded = meta["padded"]
            if i < steps - 1:
                assert padded == 0, "rank=%d step=%d" % (rank, i)
            padded_total += padded
            counts.update(ids_of(batch)[:batch.num_rows - padded].tolist())
    assert padded_total == steps * g - served.n
    assert sorted(counts) == list(range(served.n))
    assert set(counts.values()) == {1}


def test_drop_last_drops_the_incomplete_tail(served):
    world_size, batch_size = 4, 8
    g = world_size * batch_size
    ranks = read_all_ranks(served.url, served.name, world_size, batch_size, drop_last=True)
    seen = []
    for batches in ranks:
        assert len(batches) == served.n // g
        for batch, meta in batches:
            assert batch.num_rows == batch_size
            assert meta["padded"] == 0
            seen.extend(ids_of(batch).tolist())
    assert len(seen) == len(set(seen)) == (served.n // g) * g
    assert set(seen) <= set(range(served.n))


def test_every_row_holds_its_samples_tokens(served):
    for batches in read_all_ranks(served.url, served.name, 2, 8):
        for batch, _ in batches:
            np.testing.assert_array_equal(tokens_of(batch), served.expected_tokens(ids_of(batch)))


def test_uint32_tokens(served):
    from conftest import expected_tokens_u32
    info = flight_info(served.url, request(served.name_u32, 0, 1, 7))
    assert info.schema.field("tokens").type.value_type == pa.uint32()
    seen = []
    for batch, _ in read_rank(served.url, request(served.name_u32, 0, 1, 7)):
        ids = ids_of(batch)
        np.testing.assert_array_equal(tokens_of(batch), expected_tokens_u32(ids))
        seen.extend(ids.tolist())
    assert set(seen) == set(range(served.n_u32))


def test_app_metadata_and_cursor(served):
    world_size, batch_size = 4, 8
    g = world_size * batch_size
    steps = math.ceil(served.n / g)
    for rank, batches in enumerate(read_all_ranks(served.url, served.name, world_size, batch_size,
                                                  epoch=3)):
        for i, (_, meta) in enumerate(batches):
            assert META_KEYS <= set(meta), sorted(meta)
            assert meta["epoch"] == 3
            assert meta["step"] == i
            assert meta["steps"] == steps
            assert meta["delivery"] == "cpu"
            assert meta["cursor"] == (i + 1) * g, "rank=%d step=%d" % (rank, i)


def test_auto_delivery_says_cpu(served):
    batches = read_rank(served.url, request(served.name, 0, 1, 8, delivery="auto"))
    assert batches and all(meta["delivery"] == "cpu" for _, meta in batches)


def test_start_cursor_continues_the_stream(served):
    world_size, batch_size, k = 2, 8, 5
    full = read_rank(served.url, request(served.name, 1, world_size, batch_size, seed=7))
    cursor = full[k - 1][1]["cursor"]
    rest = read_rank(served.url, request(served.name, 1, world_size, batch_size, seed=7,
                                         start_cursor=cursor))
    assert len(rest) == len(full) - k
    for (a, ma), (b, mb) in zip(full[k:], rest):
        assert ids_of(a).tolist() == ids_of(b).tolist()
        assert ma["step"] == mb["step"] and ma["cursor"] == mb["cursor"]


def test_global_order_does_not_depend_on_world_size(served):
    """Step k's union over ranks is the same global batch for (W=4, B=8) and (W=2, B=16)."""
    def step_unions(world_size, batch_size):
        ranks = read_all_ranks(served.url, served.name, world_size, batch_size, seed=11,
                               drop_last=True)
        return [sorted(np.concatenate([ids_of(r[s][0]) for r in ranks]).tolist())
                for s in range(len(ranks[0]))]
    assert step_unions(4, 8) == step_unions(2, 16)


@pytest.mark.parametrize("shuffle", ["global", "block", "shard", "none"])
def test_every_shuffle_mode_is_exactly_once(served, shuffle):
    seen = []
    for batches in read_all_ranks(served.url, served.name, 3, 10, shuffle=shuffle, seed=5):
        for batch, meta in batches:
            seen.extend(ids_of(batch)[:batch.num_rows - meta["padded"]].tolist())
    assert sorted(seen) == list(range(served.n))


def test_shuffle_none_is_file_order(served):
    world_size, batch_size = 2, 8
    g = world_size * batch_size
    ranks = read_all_ranks(served.url, served.name, world_size, batch_size, shuffle="none",
                           drop_last=True)
    for s in range(len(ranks[0])):
        union = sorted(np.concatenate([ids_of(r[s][0]) for r in ranks]).tolist())
        assert union == list(range(s * g, (s + 1) * g))


def test_unknown_field_is_invalid_argument(served):
    # pyarrow raises INVALID_ARGUMENT as ArrowInvalid (a ValueError), NOT_FOUND as ArrowKeyError.
    with pytest.raises(pa.ArrowInvalid) as e:
        flight_info(served.url, request(served.name, 0, 1, 8, bogus_field=1))
    assert "bogus_field" in str(e.value)


def test_unknown_dataset_is_not_found(served):
    with pytest.raises(pa.ArrowKeyError) as e:
        flight_info(served.url, request("no-such-dataset", 0, 1, 8))
    assert "no-such-dataset" in str(e.value)


@pytest.mark.parametrize("field,req", [
    ("rank", dict(rank=4, world_size=4)),
    ("rank", dict(rank=-1, world_size=4)),
    ("world_size", dict(rank=0, world_size=0)),
    ("batch_size", dict(rank=0, world_size=1, batch_size=0)),
])
def test_bad_values_name_the_field(served, field, req):
    r = request(served.name, 0, 1, 8)
    r.update(req)
    with pytest.raises(pa.ArrowInvalid) as e:
        read_rank(served.url, r)
    assert field in str(e.value)


def test_daemon_keeps_serving_after_errors(served):
    for _ in range(3):
        with pytest.raises(pa.ArrowKeyError):
            flight_info(served.url, request("no-such-dataset", 0, 1, 8))
    assert read_rank(served.url, request(served.name, 0, 1, 64))
