"""Arrow record batch -> dict of tensors (numpy arrays when torch is absent).

Lists of integers (``tokens``) become int64 ``[B, L]``, read straight from the child values
buffer and widened once; unsigned integers widen to a signed type torch has full support for;
floats and bools keep their type; binary, string and anything else become Python lists.
"""

import numpy as np
import pyarrow as pa

try:
    import torch
except ImportError:  # torch is optional: numpy arrays then
    torch = None

# Unsigned types torch lacks (or supports only partly) widen to the next signed type.
_WIDEN = {
    np.dtype(np.uint16): np.dtype(np.int32),
    np.dtype(np.uint32): np.dtype(np.int64),
    np.dtype(np.uint64): np.dtype(np.int64),
}


def batch_to_dict(batch, as_torch=None):
    """Every column of ``batch`` (a pyarrow RecordBatch) converted, keyed by column name."""
    if as_torch is None:
        as_torch = torch is not None
    out = {}
    for name, column in zip(batch.schema.names, batch.columns):
        out[name] = column_to_value(column, as_torch)
    return out


def column_to_value(column, as_torch):
    t = column.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        value_type = t.value_type
        if _is_numeric(value_type) and column.null_count == 0:
            return _list_column(column, as_torch)
        return column.to_pylist()
    if _is_numeric(t) and column.null_count == 0:
        arr = column.to_numpy(zero_copy_only=False)
        # sample_id is uint64; ids stay far below 2**63, so int64 is exact.
        return _wrap(arr.astype(_WIDEN.get(arr.dtype, arr.dtype), copy=False), as_torch)
    return column.to_pylist()


def _is_numeric(t):
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _list_column(column, as_torch):
    """A list column of numbers as a ``[B, L]`` array when every row has length L, else a list
    of 1-D arrays. Integers become int64."""
    n = len(column)
    t = column.type
    if pa.types.is_fixed_size_list(t):
        width = t.list_size
        # .values ignores the parent's slice offset; take exactly this batch's rows.
        values = column.values.slice(column.offset * width, n * width)
        flat = values.to_numpy(zero_copy_only=False)
        arr = _widen_list_values(flat, t.value_type).reshape(n, width)
        return _wrap(arr, as_torch)
    offsets = column.offsets.to_numpy(zero_copy_only=False)
    flat = column.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    flat = _widen_list_values(flat.to_numpy(zero_copy_only=False), t.value_type)
    lengths = np.diff(offsets)
    if n > 0 and np.all(lengths == lengths[0]):
        return _wrap(flat.reshape(n, int(lengths[0])), as_torch)
    if n == 0:
        return _wrap(flat.reshape(0, 0), as_torch)
    starts = offsets[:-1] - offsets[0]
    return [_wrap(flat[s:s + ln], as_torch) for s, ln in zip(starts.tolist(), lengths.tolist())]


def _widen_list_values(flat, value_type):
    if pa.types.is_integer(value_type):
        return flat.astype(np.int64, copy=False)
    return flat


def _wrap(arr, as_torch):
    if not as_torch:
        return arr
    if not arr.flags.writeable:
        # torch.from_numpy warns on read-only memory (zero-copy Arrow buffers); the copy is the
        # same one a widening astype would have made.
        arr = arr.copy()
    return torch.from_numpy(arr)


def detach(batch_dict):
    """``batch_dict`` with every numpy array that views Arrow memory copied into its own: for
    batches read in place from shared memory, whose slot the daemon reuses once released. Torch
    tensors, and arrays widened on conversion, own their memory already."""
    def own(v):
        if isinstance(v, np.ndarray) and not v.flags.owndata and not v.flags.writeable:
            return v.copy()
        if isinstance(v, list):
            return [own(x) for x in v]
        return v
    return {k: own(v) for k, v in batch_dict.items()}
