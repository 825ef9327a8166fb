"""The Sluice Flight protocol, client side: the descriptor a stream is asked for with, and the
app_metadata every batch carries. DESIGN.md ("Contracts") is the reference; keep the two in step.
"""

import json

import pyarrow.flight as flight

SHUFFLE_MODES = ("global", "block", "shard", "none")
DELIVERY_MODES = ("cpu", "shm", "cuda", "auto")

# Delivery paths this client reads. The stream names the path it took in app_metadata; "shm"
# carries a descriptor of the batch in shared memory instead of the batch (see _shm).
_READABLE_DELIVERIES = ("cpu", "shm", "cuda")


class Security(object):
    """How to reach a daemon beyond plaintext: the bearer token sent on every call and the TLS
    root certificates for ``grpc+tls://``. ``repr`` never shows the token."""

    def __init__(self, token, tls_root_certs):
        self.token = token
        self.tls_root_certs = tls_root_certs
        headers = [(b"authorization", b"Bearer " + token.encode("utf-8"))] if token else []
        self.options = flight.FlightCallOptions(headers=headers) if headers else None

    @classmethod
    def resolve(cls, token, tls_root_certs, env):
        """Arguments first, then ``SLUICE_TOKEN`` / ``SLUICE_TOKEN_FILE`` / ``SLUICE_TLS_CA``."""
        if token is None:
            token = env.get("SLUICE_TOKEN")
        if token is None and env.get("SLUICE_TOKEN_FILE"):
            with open(env["SLUICE_TOKEN_FILE"], "r") as f:
                token = f.read().strip()
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("token must be a non-empty string")
        if tls_root_certs is None and env.get("SLUICE_TLS_CA"):
            tls_root_certs = env["SLUICE_TLS_CA"]
        if isinstance(tls_root_certs, str):
            with open(tls_root_certs, "rb") as f:
                tls_root_certs = f.read()
        return cls(token.strip() if token else None, tls_root_certs)

    def client(self, url):
        if self.tls_root_certs is not None:
            return flight.FlightClient(url, tls_root_certs=self.tls_root_certs)
        return flight.FlightClient(url)

    def __repr__(self):
        return "Security(token=%s, tls_root_certs=%s)" % (
            "(set)" if self.token else None, "(set)" if self.tls_root_certs else None)


def normalize_location(url):
    """``grpc://h:p``, ``grpc+tcp://h:p``, ``grpc+tls://h:p``, ``grpc+unix://path`` pass through;
    ``h:p`` gets ``grpc://``."""
    if not isinstance(url, str) or not url:
        raise ValueError("url=%r must be a non-empty string like 'grpc://127.0.0.1:8815'" % (url,))
    if "://" in url:
        return url
    host, sep, port = url.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("url=%r must be 'grpc://HOST:PORT' or 'HOST:PORT'" % (url,))
    return "grpc://" + url


def descriptor_command(dataset, rank, world_size, batch_size, seed, epoch, shuffle, drop_last,
                       start_cursor, delivery, columns, shm_token=None, device=None):
    """The UTF-8 JSON command of the FlightDescriptor. Values are sent as given: the daemon
    validates them and answers a bad one with an error naming the field."""
    command = {
        "dataset": dataset,
        "rank": rank,
        "world_size": world_size,
        "batch_size": batch_size,
        "seed": seed,
        "epoch": epoch,
        "shuffle": shuffle,
        "drop_last": drop_last,
        "start_cursor": start_cursor,
        "delivery": delivery,
        "columns": None if columns is None else list(columns),
    }
    if shm_token is not None:
        command["shm_token"] = shm_token
    if device is not None:
        command["device"] = device
    return json.dumps(command, separators=(",", ":")).encode("utf-8")


def parse_batch_metadata(buf):
    """app_metadata (a pyarrow Buffer or bytes holding UTF-8 JSON) as a dict; {} when absent."""
    if buf is None:
        return {}
    raw = buf.to_pybytes() if hasattr(buf, "to_pybytes") else bytes(buf)
    if not raw:
        return {}
    meta = json.loads(raw.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("batch app_metadata must be a JSON object, got %r" % (raw[:200],))
    return meta


def check_readable(meta):
    delivery = meta.get("delivery", "cpu")
    if delivery not in _READABLE_DELIVERIES:
        raise NotImplementedError(
            "the daemon delivered a batch with delivery=%r; this client reads only %s. "
            "Ask for delivery='cpu', 'shm' or 'cuda'." % (delivery, ", ".join(_READABLE_DELIVERIES)))


def is_last_step(meta):
    """Whether this batch is the rank's last of the epoch (``step`` counts from 0, ``steps`` is the
    epoch's batches per rank)."""
    step, steps = meta.get("step"), meta.get("steps")
    if step is None or steps is None:
        return False
    return int(step) + 1 >= int(steps)
