package io.sluice.server;

import io.sluice.client.ShmLayout;
import io.sluice.nativeio.CudaException;
import io.sluice.nativeio.DeviceMemory;
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

  /** How long a closing stream waits for its client to close the pool's IPC mapping. */
  static final long DETACH_WAIT_MS = 10_000;

  private final Path control;
  private final Arena arena;
  private final MemorySegment header;
  private final BufferAllocator reservation;
  private final DeviceMemory cuda;
  private final CudaDevices devices;
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
      DeviceMemory cuda,
      CudaDevices devices,
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
    this.devices = devices;
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
      Path control,
      CudaDevices devices,
      int device,
      long poolBytes,
      long stagingBytes,
      BufferAllocator budget)
      throws IOException {
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
    DeviceMemory cuda;
    try {
      cuda = devices.driver(device);
    } catch (IOException | RuntimeException e) {
      reservation.close();
      throw e;
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
          control,
          arena,
          header,
          reservation,
          cuda,
          devices,
          pool,
          poolBytes,
          handle,
          staging,
          stream);
    } catch (IOException | RuntimeException e) { // CudaException is an IOException
      freeQuietly(cuda, staging, stream);
      if (pool != 0) {
        freePool(cuda, pool);
      }
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

  /** Frees the staging buffer and the stream, each on its own: one failing leaks not the other. */
  private static void freeQuietly(DeviceMemory cuda, MemorySegment staging, MemorySegment stream) {
    if (stream != null) {
      try {
        cuda.destroyStream(stream);
      } catch (CudaException e) {
        LOG.log(Level.WARNING, "destroying a cuda stream's CUDA stream failed", e);
      }
    }
    if (staging != null) {
      try {
        cuda.freeHost(staging);
      } catch (CudaException e) {
        LOG.log(Level.WARNING, "freeing a cuda stream's pinned staging buffer failed", e);
      }
    }
  }

  static void freePool(DeviceMemory cuda, long pool) {
    try {
      cuda.freeDevice(pool);
    } catch (CudaException e) {
      LOG.log(Level.WARNING, "freeing a cuda stream's device pool failed", e);
    }
  }

  /**
   * Frees the staging buffer, the pool and the control file. The stream calls it once the client
   * released every batch or went away. Freeing device memory another process still has open through
   * IPC is undefined behaviour in CUDA, so the pool is freed only once the client said it closed
   * its mapping ({@link ShmLayout#detached}, waited for up to {@code detachWaitMs}); a pool whose
   * client never says so (it hung, died, or stopped reading without closing) is handed to {@link
   * CudaDevices} and freed when the daemon stops, logged.
   */
  void close(long detachWaitMs) {
    try {
      freeQuietly(cuda, staging, stream);
      long deadline = System.nanoTime() + detachWaitMs * 1_000_000;
      if (SlotRing.awaitClient(
          () -> ShmLayout.detached(header), () -> System.nanoTime() >= deadline)) {
        freePool(cuda, pool);
      } else {
        LOG.warning(
            "the client of "
                + control.getFileName()
                + " did not say it closed its CUDA IPC mapping within "
                + detachWaitMs
                + " ms: its device pool of "
                + poolBytes
                + " bytes is freed when the daemon stops");
        devices.freeAtStop(cuda, pool);
      }
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

  @Override
  public void close() {
    close(DETACH_WAIT_MS);
  }
}
