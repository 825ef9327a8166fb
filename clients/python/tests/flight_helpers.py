"""Plain pyarrow.flight reads of the Sluice protocol (no sluice code), shared by the tests."""

import json

import numpy as np
import pyarrow.flight as flight


def request(dataset, rank, world_size, batch_size, **extra):
    req = {"dataset": dataset, "rank": rank, "world_size": world_size, "batch_size": batch_size}
    req.update(extra)
    return req


def flight_info(url, req):
    client = flight.FlightClient(url)
    try:
        return client.get_flight_info(
            flight.FlightDescriptor.for_command(json.dumps(req).encode("utf-8")))
    finally:
        client.close()


def read_stream(url, req):
    """(FlightInfo, [(RecordBatch, metadata dict)]) of one rank's stream."""
    client = flight.FlightClient(url)
    try:
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(json.dumps(req).encode("utf-8")))
        assert len(info.endpoints) == 1, info.endpoints
        reader = client.do_get(info.endpoints[0].ticket)
        out = []
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            assert chunk.app_metadata is not None, "batch %d has no app_metadata" % len(out)
            out.append((chunk.data, json.loads(chunk.app_metadata.to_pybytes().decode("utf-8"))))
        return info, out
    finally:
        client.close()


def read_rank(url, req):
    """[(RecordBatch, metadata dict)] of one rank's stream."""
    return read_stream(url, req)[1]


def read_all_ranks(url, dataset, world_size, batch_size, **extra):
    return [read_rank(url, request(dataset, r, world_size, batch_size, **extra))
            for r in range(world_size)]


def ids_of(batch):
    return batch.column("sample_id").to_numpy().astype(np.int64)


def tokens_of(batch):
    col = batch.column("tokens")
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(col), width)
