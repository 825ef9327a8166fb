"""Reading ``shm`` batches in place from the daemon's shared memory.

The daemon answers the ``shm_probe`` action with the path of a probe file; a client that can read
it shares the daemon's host and shared memory and sends its content as ``shm_token``. A ``shm``
stream then carries, per batch, app_metadata naming a region file, an offset and a length: an
Arrow IPC message that pyarrow reads with no copy from the mapped file. The client releases a batch
by writing its sequence number + 1 at byte 64 of the region (layout: DESIGN.md, ShmLayout.java).
"""

import json
import mmap
import os

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

LAYOUT_VERSION = 1
HEADER_BYTES = 4096
_MAGIC = b"SLUICESH"
_RELEASED_OFFSET = 64
_DETACHED_OFFSET = 72  # a cuda client's "I closed my IPC mapping of the pool"


def probe(client, options=None, answer_out=None):
    """(token, None) when this process can use the daemon's shm delivery, else (None, reason).
    ``options``: the FlightCallOptions of every call (a bearer token), or None; ``answer_out``, a
    dict, gets the daemon's whole answer (it also says whether the daemon has a GPU)."""
    try:
        results = list(client.do_action(flight.Action("shm_probe", b""), options))
    except flight.FlightUnavailableError:
        raise  # no daemon there (or it is stopping): the caller decides
    except flight.FlightError as e:
        return None, "the daemon does not answer the shm probe: %s" % (e,)
    if not results:
        return None, "the daemon answered the shm probe with nothing"
    answer = json.loads(results[0].body.to_pybytes().decode("utf-8"))
    if answer_out is not None:
        answer_out.update(answer)
    if not answer.get("available"):
        return None, "the daemon has no shared memory: %s" % (answer.get("cause"),)
    if answer.get("layout_version") != LAYOUT_VERSION:
        return None, ("the daemon's shm layout_version=%r is not this client's (%d)"
                      % (answer.get("layout_version"), LAYOUT_VERSION))
    try:
        with open(answer["path"], "rb") as f:
            return f.read().decode("ascii").strip(), None
    except OSError as e:
        return None, "cannot read the daemon's shm probe %s: %s" % (answer.get("path"), e)


class _Region(object):
    def __init__(self, path):
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES:
                raise ValueError("shm region %s is %d bytes, shorter than its header" % (path, size))
            self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        header = bytes(self.map[:24])
        if header[:8] != _MAGIC:
            raise ValueError("shm region %s is not a Sluice region" % path)
        version = int.from_bytes(header[8:12], "little")
        if version != LAYOUT_VERSION:
            raise ValueError("shm region %s has layout version %d, this client reads %d"
                             % (path, version, LAYOUT_VERSION))
        self.capacity = int.from_bytes(header[16:24], "little")
        if HEADER_BYTES + self.capacity > size:
            raise ValueError("shm region %s: capacity %d exceeds the file's %d bytes"
                             % (path, self.capacity, size))
        self.buffer = pa.py_buffer(self.map)  # one zero-copy view; batches slice it
        self._released = np.frombuffer(self.map, dtype="<u8", count=1, offset=_RELEASED_OFFSET)
        self._detached = np.frombuffer(self.map, dtype="<u8", count=1, offset=_DETACHED_OFFSET)

    def release(self, seq):
        self._released[0] = seq + 1  # one aligned 8-byte store

    def detach(self):
        self._detached[0] = 1


class Importer(object):
    """Maps the regions a stream names (once each) and turns descriptors into record batches."""

    def __init__(self, schema):
        self.schema = schema
        self._regions = {}

    def read(self, slot):
        """The record batch ``slot`` (the app_metadata's ``shm`` object) names, read in place."""
        if slot.get("layout_version") != LAYOUT_VERSION:
            raise ValueError("shm layout_version=%r is not this client's (%d)"
                             % (slot.get("layout_version"), LAYOUT_VERSION))
        path = slot["region"]
        region = self._regions.get(path)
        if region is None:
            region = self._regions[path] = _Region(path)
        offset, length = int(slot["offset"]), int(slot["length"])
        if offset < HEADER_BYTES or length <= 0 or offset + length > HEADER_BYTES + region.capacity:
            raise ValueError("shm batch at offset %d length %d lies outside region %s"
                             % (offset, length, path))
        message = pa.ipc.read_message(region.buffer.slice(offset, length))
        return pa.ipc.read_record_batch(message, self.schema)

    def release(self, slot):
        region = self._regions.get(slot["region"])
        if region is not None:
            region.release(int(slot["seq"]))

    def close(self):
        """Drops this importer's references; each mapping goes once no batch still views it."""
        self._regions.clear()
