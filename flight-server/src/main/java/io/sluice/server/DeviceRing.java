package io.sluice.server;

import io.sluice.client.ShmLayout;
import io.sluice.nativeio.CudaDriver;
import io.sluice.nativeio.CudaException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.function.BooleanSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.OutOfMemoryException;

/**
 * One {@code cuda} stream's batches on the GPU: a pool of device memory exported to the client by a
 * CUDA IPC handle, a pinned host staging buffer the batch is gathered in and copied up from, and a
 * host control file (a {@link ShmLayout} header with no message area) whose release mark the client
 * moves as with shm. Placement in the pool is a {@link SlotRing}: a slot is reused only after the
 * client released it. The staging buffer's bytes are reserved from the daemon's budget. Owned by
 * the stream's thread.
 */
final class DeviceRing implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(DeviceRing.class.getName());

  private final Path control;
  private final Arena arena;
  private final MemorySegment header;
  private final BufferAllocator reservation;
  private final CudaDriver cuda;
  private final long pool;
  private final long poolBytes;
  private final String handle;
  private final MemorySegment staging;
  private final MemorySegment stream;
  private final SlotRing slots;

  private DeviceRing(
      Path control,
      Arena arena,
      MemorySegment header,
      BufferAllocator reservation,
      CudaDriver cuda,
      long pool,
      long poolBytes,
      String handle,
      MemorySegment staging,
      MemorySegment stream) {
    this.control = control;
    this.arena = arena;
    this.header = header;
    this.reservation = reservation;
    this.cuda = cuda;
    this.pool = pool;
    this.poolBytes = poolBytes;
    this.handle = handle;
    this.staging = staging;
    this.stream = stream;
    this.slots = new SlotRing(header, 0, poolBytes);
  }

  /**
   * A pool of {@code poolBytes} on {@code cuda}'s device with a staging buffer of {@code
   * stagingBytes} (the largest batch) reserved from {@code budget}, and the control file at {@code
   * control}; null when the budget cannot hold the staging buffer.
   */
  static DeviceRing create(
      Path control, CudaDriver cuda, long poolBytes, long stagingBytes, BufferAllocator budget)
      throws IOException, CudaException {
    BufferAllocator reservation;
    try {
      reservation =
          budget.newChildAllocator(
              "cuda-" + control.getFileName(),
              stagingBytes + ShmLayout.HEADER_BYTES,
              Long.MAX_VALUE);
    } catch (OutOfMemoryException e) {
      return null;
    }
    Arena arena = Arena.ofShared();
    long pool = 0;
    MemorySegment staging = null;
    MemorySegment stream = null;
    try {
      MemorySegment header = ShmRing.mapNewFile(control, ShmLayout.HEADER_BYTES, arena);
      ShmLayout.writeHeader(header, 0); // no message area: the batches are on the device
      pool = cuda.allocDevice(poolBytes);
      staging = cuda.allocHost(stagingBytes);
      stream = cuda.createStream();
      String handle = Base64.getEncoder().encodeToString(cuda.ipcHandle(pool));
      return new DeviceRing(
          control, arena, header, reservation, cuda, pool, poolBytes, handle, staging, stream);
    } catch (IOException | RuntimeException e) { // CudaException is an IOException
      freeQuietly(cuda, pool, staging, stream);
      arena.close();
      Files.deleteIfExists(control);
      reservation.close();
      throw e;
    }
  }

  String controlPath() {
    return control.toString();
  }

  int device() {
    return cuda.device();
  }

  long poolBytes() {
    return poolBytes;
  }

  /** The pool's CUDA IPC handle, base64. */
  String handle() {
    return handle;
  }

  /** Pinned host memory a batch is gathered in before {@link #upload}. */
  MemorySegment staging() {
    return staging;
  }

  long nextSeq() {
    return slots.nextSeq();
  }

  /** Room for {@code bytes} in the pool (its offset), or -1 when {@code stop} turned true first. */
  long place(long bytes, BooleanSupplier stop) {
    return slots.place(bytes, stop);
  }

  boolean awaitAllReleased(BooleanSupplier stop) {
    return slots.awaitAllReleased(stop);
  }

  /**
   * Copies the first {@code bytes} of the staging buffer to {@code offset} in the pool and waits
   * for the copy: when it returns, a client that opens the handle reads the batch there.
   */
  void upload(long offset, long bytes) throws CudaException {
    if (offset < 0 || bytes > staging.byteSize() || offset + bytes > poolBytes) {
      throw new IllegalArgumentException(
          "upload of " + bytes + " bytes at " + offset + " outside the pool of " + poolBytes);
    }
    cuda.copyToDeviceAsync(pool + offset, staging, bytes, stream);
    cuda.synchronize(stream);
  }

  private static void freeQuietly(
      CudaDriver cuda, long pool, MemorySegment staging, MemorySegment stream) {
    try {
      if (stream != null) {
        cuda.destroyStream(stream);
      }
      if (staging != null) {
        cuda.freeHost(staging);
      }
      if (pool != 0) {
        cuda.freeDevice(pool);
      }
    } catch (CudaException e) {
      LOG.log(Level.WARNING, "freeing a cuda stream's device memory failed", e);
    }
  }

  /**
   * Frees the pool, the staging buffer and the control file. The stream calls it once the client
   * released every batch (it reads no slot after releasing it) or went away; the client closes its
   * handle at the stream's end.
   */
  @Override
  public void close() {
    try {
      freeQuietly(cuda, pool, staging, stream);
    } finally {
      arena.close();
      try {
        Files.deleteIfExists(control);
      } catch (IOException ignored) {
        // the daemon's folder is removed at exit anyway
      } finally {
        reservation.close();
      }
    }
  }
}
