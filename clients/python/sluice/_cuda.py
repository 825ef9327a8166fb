"""Reading ``cuda`` batches: batches the daemon put in GPU memory, handed over by CUDA IPC.

A ``cuda`` stream's daemon allocates a pool of device memory for the stream and sends its CUDA IPC
handle (base64 of the 64-byte ``cudaIpcMemHandle_t``) in the first batch's app_metadata. Each
batch's ``cuda`` object then says where the batch lies in the pool: one dense array per column
(offset, dtype, shape). This process opens the handle once (with CuPy or cuda-python, whichever is
installed), wraps each column as a torch CUDA tensor through ``__cuda_array_interface__`` (no copy),
widens integers to int64 on the GPU (that copy is what the trainer keeps), and releases the slot by
writing its sequence number + 1 into the stream's control file (a shm header; see _shm.py) once the
copy has finished. The layout is in DESIGN.md and CudaSlot.java.
"""

import base64
import warnings

from . import _shm

HANDLE_BYTES = 64

# numpy dtype names the daemon sends -> (typestr of the view, mask that widens it to unsigned).
# Unsigned columns are viewed as the signed type of their width and masked after widening to int64,
# which every torch version supports (uint16/uint32 tensors are recent and partial).
_VIEWS = {
    "uint8": ("|u1", None),
    "int8": ("|i1", None),
    "uint16": ("<i2", 0xFFFF),
    "int16": ("<i2", None),
    "uint32": ("<i4", 0xFFFFFFFF),
    "int32": ("<i4", None),
    "uint64": ("<i8", None),  # sample ids stay far below 2**63
    "int64": ("<i8", None),
}


def unavailable_cause():
    """None when this process can open CUDA IPC handles into torch tensors, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device (torch %s)" % torch.__version__
    try:
        import numpy  # noqa: F401  (torch reads the CUDA array interface through numpy)
    except ImportError:
        return "numpy is not installed (torch needs it to read the CUDA array interface)"
    if _opener() is None:
        return "neither cupy nor cuda-python (cuda.bindings) is installed"
    return None


def _opener():
    """A function (handle bytes) -> (device pointer, close function), or None."""
    try:
        import cupy

        def open_cupy(handle):
            ptr = cupy.cuda.runtime.ipcOpenMemHandle(handle)
            return ptr, lambda: cupy.cuda.runtime.ipcCloseMemHandle(ptr)
        return open_cupy
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return None

    def open_cudart(handle):
        h = cudart.cudaIpcMemHandle_t()
        h.reserved = handle
        err, ptr = cudart.cudaIpcOpenMemHandle(h, cudart.cudaIpcMemLazyEnablePeerAccess)
        if err != cudart.cudaError_t.cudaSuccess:
            raise RuntimeError("cudaIpcOpenMemHandle failed: %s" % (err,))

        def close():
            (err,) = cudart.cudaIpcCloseMemHandle(ptr)
            if err != cudart.cudaError_t.cudaSuccess:
                raise RuntimeError("cudaIpcCloseMemHandle failed: %s" % (err,))
        return int(ptr), close
    return open_cudart


class _Array(object):
    """A device array at ``ptr`` for torch.as_tensor, by the CUDA array interface (version 3)."""

    def __init__(self, ptr, typestr, shape):
        self.__cuda_array_interface__ = {
            "shape": tuple(int(d) for d in shape), "typestr": typestr, "data": (int(ptr), False),
            "strides": None, "version": 3, "stream": None}


class Importer(object):
    """Opens a stream's pool once and turns each batch's descriptor into torch CUDA tensors."""

    def __init__(self, device):
        import torch
        self._torch = torch
        self.device = torch.device(device)
        self._base = None
        self._close = None
        self._pool_bytes = 0
        self._control = None
        self._control_path = None

    def read(self, slot):
        """A dict of int64 CUDA tensors (``tokens`` [B, L], ``sample_id`` [B]) for ``slot`` (the
        app_metadata's ``cuda`` object), copied out of the pool; release the slot afterwards."""
        torch = self._torch
        if slot.get("layout_version") != _shm.LAYOUT_VERSION:
            raise ValueError("cuda layout_version=%r is not this client's (%d)"
                             % (slot.get("layout_version"), _shm.LAYOUT_VERSION))
        if self._base is None:
            self._open(slot)
        offset, length = int(slot["offset"]), int(slot["length"])
        if offset < 0 or length <= 0 or offset + length > self._pool_bytes:
            raise ValueError("cuda batch at offset %d length %d lies outside the pool of %d bytes"
                             % (offset, length, self._pool_bytes))
        out = {}
        with torch.cuda.device(self.device):
            for col in slot["columns"]:
                dtype = col["dtype"]
                if dtype not in _VIEWS:
                    raise ValueError("cuda column %r has dtype %r, which this client does not read"
                                     % (col["name"], dtype))
                typestr, mask = _VIEWS[dtype]
                at = int(col["offset"])
                itemsize = int(typestr[2:])
                count = 1
                for d in col["shape"]:
                    count *= int(d)
                if at < offset or at + count * itemsize > offset + length:
                    raise ValueError("cuda column %r lies outside its batch" % (col["name"],))
                view = torch.as_tensor(_Array(self._base + at, typestr, col["shape"]),
                                       device=self.device)
                wide = view.to(torch.int64, copy=True)
                if mask is not None:
                    wide &= mask
                out[col["name"]] = wide
            # The copies out of the pool must be done before the daemon may reuse the slot.
            torch.cuda.current_stream(self.device).synchronize()
        return out

    def _open(self, slot):
        handle = slot.get("handle")
        if handle is None:
            raise ValueError("the stream's first cuda batch came without the pool's IPC handle")
        raw = base64.b64decode(handle)
        if len(raw) != HANDLE_BYTES:
            raise ValueError("cuda handle is %d bytes, not %d" % (len(raw), HANDLE_BYTES))
        # The control file first: close() then tells the daemon this process holds no mapping
        # even when opening the handle fails.
        self._control_path = slot["control"]
        self._control = _shm._Region(self._control_path)
        opener = _opener()
        if opener is None:
            raise RuntimeError("delivery='cuda' needs cupy or cuda-python to open the daemon's "
                               "CUDA IPC handle; install one, or use delivery='auto'")
        with self._torch.cuda.device(self.device):
            self._base, self._close = opener(raw)
        self._pool_bytes = int(slot["pool_bytes"])

    def release(self, slot):
        if self._control is not None:
            self._control.release(int(slot["seq"]))

    def close(self):
        """Closes the IPC mapping and tells the daemon so (it frees the pool only then: freeing
        memory another process still has open is undefined in CUDA). A failure to close is a
        warning, not an error: the batches already handed out are copies."""
        if self._close is not None:
            try:
                with self._torch.cuda.device(self.device):
                    self._close()
            except Exception as e:  # the epoch's batches are fine; say what leaked
                warnings.warn("closing the daemon's CUDA IPC mapping failed: %s" % (e,),
                              RuntimeWarning)
            finally:
                self._close = None
                self._base = None
        if self._control is not None:
            self._control.detach()
        self._control = None
