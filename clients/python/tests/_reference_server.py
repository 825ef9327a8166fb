"""A small pyarrow Flight server speaking the Sluice protocol, for developing the client without
the Java daemon (``SLUICE_TEST_SERVER=python``). It is a stand-in, not the reference: where it and
the daemon disagree, the daemon and DESIGN.md win. Global order: a seeded permutation per epoch;
step k of rank r holds global positions [k*G + r*B, k*G + (r+1)*B), G = world_size * batch_size,
positions past the end wrap around (padding) unless drop_last.
"""

import json
import math
import threading

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

_KEYS = {"dataset", "rank", "world_size", "batch_size", "seed", "epoch", "shuffle", "drop_last",
         "start_cursor", "delivery", "columns"}


class TokenData(object):
    def __init__(self, paths, dtype, seq_len):
        self.seq_len = seq_len
        self.value_type = pa.from_numpy_dtype(np.dtype(dtype))
        self.tokens = np.concatenate([np.fromfile(p, dtype=dtype) for p in paths]).reshape(-1, seq_len)

    def __len__(self):
        return self.tokens.shape[0]


class ReferenceServer(flight.FlightServerBase):
    def __init__(self, datasets, location="grpc://127.0.0.1:0"):
        super().__init__(location)
        self._datasets = datasets

    def _request(self, raw):
        try:
            req = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise pa.ArrowInvalid("descriptor is not JSON: %s" % e)
        unknown = sorted(set(req) - _KEYS)
        if unknown:
            raise pa.ArrowInvalid("INVALID_ARGUMENT: unknown field=%s" % unknown[0])
        for key in ("dataset", "rank", "world_size", "batch_size"):
            if key not in req:
                raise pa.ArrowInvalid("INVALID_ARGUMENT: missing field=%s" % key)
        name = req["dataset"]
        if name not in self._datasets:
            raise KeyError("NOT_FOUND: dataset=%s is not served" % name)
        r = dict(seed=0, epoch=0, shuffle="global", drop_last=False, start_cursor=0,
                 delivery="cpu", columns=None)
        r.update(req)
        if r["world_size"] < 1:
            raise pa.ArrowInvalid("INVALID_ARGUMENT: world_size=%d must be >= 1" % r["world_size"])
        if not 0 <= r["rank"] < r["world_size"]:
            raise pa.ArrowInvalid("INVALID_ARGUMENT: rank=%d must be in [0, world_size=%d)"
                                           % (r["rank"], r["world_size"]))
        if r["batch_size"] < 1:
            raise pa.ArrowInvalid("INVALID_ARGUMENT: batch_size=%d must be >= 1" % r["batch_size"])
        if r["shuffle"] not in ("global", "block", "shard", "none"):
            raise pa.ArrowInvalid("INVALID_ARGUMENT: shuffle=%s" % r["shuffle"])
        g = r["world_size"] * r["batch_size"]
        if r["start_cursor"] % g:
            raise pa.ArrowInvalid("INVALID_ARGUMENT: start_cursor=%d is not a multiple of "
                                           "the global batch %d" % (r["start_cursor"], g))
        return r

    def _schema(self, data, columns):
        fields = [pa.field("sample_id", pa.uint64()),
                  pa.field("tokens", pa.list_(data.value_type, data.seq_len))]
        if columns is not None:
            fields = [f for f in fields if f.name == "sample_id" or f.name in columns]
        return pa.schema(fields)

    def get_flight_info(self, context, descriptor):
        r = self._request(descriptor.command)
        data = self._datasets[r["dataset"]]
        ticket = flight.Ticket(json.dumps(r).encode("utf-8"))
        return flight.FlightInfo(self._schema(data, r["columns"]), descriptor,
                                 [flight.FlightEndpoint(ticket, [])], -1, -1)

    def do_get(self, context, ticket):
        r = json.loads(ticket.ticket.decode("utf-8"))
        data = self._datasets[r["dataset"]]
        n, b, g = len(data), r["batch_size"], r["world_size"] * r["batch_size"]
        if r["shuffle"] == "none":
            order = np.arange(n)
        else:
            order = np.random.default_rng([r["seed"], r["epoch"]]).permutation(n)
        steps = n // g if r["drop_last"] else math.ceil(n / g)
        schema = self._schema(data, r["columns"])
        delivery = "cpu" if r["delivery"] == "auto" else r["delivery"]

        def gen():
            for step in range(r["start_cursor"] // g, steps):
                pos = np.arange(step * g + r["rank"] * b, step * g + (r["rank"] + 1) * b)
                padded = int((pos >= n).sum())
                ids = order[pos % n]
                cols = [pa.array(ids.astype(np.uint64)),
                        pa.FixedSizeListArray.from_arrays(
                            pa.array(data.tokens[ids].reshape(-1)), data.seq_len)]
                batch = pa.RecordBatch.from_arrays(cols[:len(schema)], schema=schema)
                meta = {"epoch": r["epoch"], "step": step, "cursor": (step + 1) * g,
                        "delivery": delivery, "padded": padded, "steps": steps}
                yield batch, json.dumps(meta).encode("utf-8")

        return flight.GeneratorStream(schema, gen())


def start(datasets):
    server = ReferenceServer(datasets)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return server, "grpc://127.0.0.1:%d" % server.port
