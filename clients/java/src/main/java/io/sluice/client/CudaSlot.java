package io.sluice.client;

import java.util.Base64;
import java.util.List;

/**
 * Where one {@code cuda} batch lies: in a pool of device memory the daemon allocated for the stream
 * on GPU {@code device}, exported by a CUDA IPC handle the stream's first batch carries ({@code
 * handle}, base64 of the 64-byte {@code cudaIpcMemHandle_t}; null on later batches). The batch
 * occupies {@code [offset, offset + length)} of the pool; each column is a dense array at its own
 * offset. The client releases the batch, once it no longer reads the pool there, by writing {@code
 * seq + 1} into the release mark of the host {@code control} file ({@link ShmLayout}, a header with
 * no message area), as with shm.
 *
 * @param columns every column of the batch, in schema order
 */
public record CudaSlot(
    String control,
    int device,
    long poolBytes,
    String handle,
    long offset,
    long length,
    long seq,
    List<Column> columns) {

  /** Bytes of a CUDA IPC memory handle. */
  public static final int HANDLE_BYTES = 64;

  /**
   * One column: a C-contiguous array of {@code dtype} (numpy's names: {@code uint64}, {@code
   * uint16}, ...) and {@code shape} at absolute {@code offset} in the pool.
   */
  public record Column(String name, long offset, String dtype, List<Long> shape) {
    public Column {
      if (name == null || name.isEmpty() || dtype == null || dtype.isEmpty() || shape == null) {
        throw new ProtocolException("cuda.columns", "a cuda column needs name, dtype and shape");
      }
      shape = List.copyOf(shape);
    }

    /** The column's bytes (elements times the dtype's width), or -1 for an unknown dtype. */
    public long bytes() {
      int bits;
      try {
        bits = Integer.parseInt(dtype.replaceFirst("^u?int", ""));
      } catch (NumberFormatException e) {
        return -1;
      }
      if (!dtype.matches("u?int(8|16|32|64)")) {
        return -1;
      }
      long n = bits / 8;
      for (long d : shape) {
        if (d < 0) {
          return -1;
        }
        n = Math.multiplyExact(n, d);
      }
      return n;
    }
  }

  public CudaSlot {
    if (control == null || control.isEmpty()) {
      throw new ProtocolException("cuda.control", "cuda descriptor lacks the control path");
    }
    if (device < 0
        || poolBytes <= 0
        || offset < 0
        || length <= 0
        || seq < 0
        || offset > poolBytes
        || length > poolBytes - offset) {
      throw new ProtocolException(
          "cuda",
          "cuda descriptor device="
              + device
              + " pool_bytes="
              + poolBytes
              + " offset="
              + offset
              + " length="
              + length
              + " seq="
              + seq
              + " is out of range");
    }
    if (handle != null && decodedLength(handle) != HANDLE_BYTES) {
      throw new ProtocolException(
          "cuda.handle", "cuda handle must be base64 of " + HANDLE_BYTES + " bytes");
    }
    if (columns == null || columns.isEmpty()) {
      throw new ProtocolException("cuda.columns", "cuda descriptor lists no columns");
    }
    for (Column c : columns) {
      long bytes = c.bytes();
      if (c.offset() < offset || bytes < 0 || c.offset() - offset > length - bytes) {
        throw new ProtocolException(
            "cuda.columns",
            "cuda column "
                + c.name()
                + " at offset "
                + c.offset()
                + " ("
                + bytes
                + " bytes) lies outside its batch");
      }
    }
    columns = List.copyOf(columns);
  }

  private static int decodedLength(String base64) {
    try {
      return Base64.getDecoder().decode(base64).length;
    } catch (IllegalArgumentException e) {
      return -1;
    }
  }
}
