package io.sluice.server;

import io.sluice.nativeio.Cuda;
import io.sluice.nativeio.CudaDriver;
import io.sluice.nativeio.CudaException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The daemon's CUDA drivers, one per device a {@code cuda} stream used, opened on first use and
 * kept (a device's primary context costs a fraction of a second to create: once per daemon, not
 * once per epoch). Thread-safe.
 */
final class CudaDevices implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(CudaDevices.class.getName());

  private final Map<Integer, CudaDriver> open = new HashMap<>();
  private final List<long[]> deferred = new ArrayList<>(); // {device, pool}
  private boolean closed;

  /** GPUs on this host (0 where there is no usable driver). */
  static int count() {
    return Cuda.isAvailable() ? Cuda.devices().size() : 0;
  }

  synchronized CudaDriver driver(int device) throws CudaException {
    if (closed) {
      throw new IllegalStateException("the daemon is stopping");
    }
    CudaDriver d = open.get(device);
    if (d == null) {
      d = CudaDriver.open(device);
      open.put(device, d);
    }
    return d;
  }

  /** A pool a client may still have mapped: freed at {@link #close()}, before the contexts go. */
  synchronized void freeAtStop(CudaDriver driver, long pool) {
    deferred.add(new long[] {driver.device(), pool});
  }

  @Override
  public synchronized void close() {
    closed = true;
    for (long[] d : deferred) {
      CudaDriver driver = open.get((int) d[0]);
      if (driver != null) {
        DeviceRing.freePool(driver, d[1]);
      }
    }
    deferred.clear();
    for (CudaDriver d : open.values()) {
      try {
        d.close();
      } catch (CudaException e) {
        LOG.log(Level.WARNING, "releasing CUDA device " + d.device() + " failed", e);
      }
    }
    open.clear();
  }
}
