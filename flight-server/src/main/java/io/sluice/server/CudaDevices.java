package io.sluice.server;

import io.sluice.nativeio.Cuda;
import io.sluice.nativeio.CudaDriver;
import io.sluice.nativeio.CudaException;
import io.sluice.nativeio.DeviceMemory;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.IntStream;

/**
 * The daemon's CUDA drivers, one per device a {@code cuda} stream used, opened on first use and
 * kept (a device's primary context costs a fraction of a second to create: once per daemon, not
 * once per epoch). Thread-safe.
 */
final class CudaDevices implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(CudaDevices.class.getName());

  /** Opens a device's driver; tests on hosts without a GPU hand in a stand-in. */
  @FunctionalInterface
  interface Opener {
    DeviceMemory open(int device) throws CudaException;
  }

  private final Opener opener;
  private final int standIns; // -1: the host's GPUs, as Cuda finds them
  private final Map<Integer, DeviceMemory> open = new HashMap<>();
  private final List<long[]> deferred = new ArrayList<>(); // {device, pool}
  private boolean closed;

  /** The host's GPUs, through the CUDA driver. */
  CudaDevices() {
    this.opener = CudaDriver::open;
    this.standIns = -1;
  }

  /** {@code count} GPUs that {@code opener} stands in for (tests on hosts without one). */
  CudaDevices(Opener opener, int count) {
    this.opener = opener;
    this.standIns = count;
  }

  /** Whether there is a GPU to deliver to. */
  boolean available() {
    return standIns >= 0 ? standIns > 0 : Cuda.isAvailable();
  }

  /** Why there is none; null when {@link #available()}. */
  String unavailabilityCause() {
    if (available()) {
      return null;
    }
    return standIns >= 0 ? "no GPU stands in" : Cuda.unavailabilityCause().getMessage();
  }

  /** The GPUs' names, by index. */
  List<String> names() {
    if (standIns >= 0) {
      return IntStream.range(0, standIns).mapToObj(i -> "stand-in " + i).toList();
    }
    return Cuda.isAvailable() ? Cuda.devices().stream().map(Cuda.Device::name).toList() : List.of();
  }

  /** GPUs (0 where there is no usable driver). */
  int count() {
    return names().size();
  }

  synchronized DeviceMemory driver(int device) throws CudaException {
    if (closed) {
      throw new IllegalStateException("the daemon is stopping");
    }
    DeviceMemory d = open.get(device);
    if (d == null) {
      d = opener.open(device);
      open.put(device, d);
    }
    return d;
  }

  /** A pool a client may still have mapped: freed at {@link #close()}, before the contexts go. */
  synchronized void freeAtStop(DeviceMemory driver, long pool) {
    deferred.add(new long[] {driver.device(), pool});
  }

  /** Pools waiting for the daemon's stop (a client that never said it closed its mapping). */
  synchronized int deferredPools() {
    return deferred.size();
  }

  @Override
  public synchronized void close() {
    closed = true;
    for (long[] d : deferred) {
      DeviceMemory driver = open.get((int) d[0]);
      if (driver != null) {
        DeviceRing.freePool(driver, d[1]);
      }
    }
    deferred.clear();
    for (DeviceMemory d : open.values()) {
      if (d instanceof CudaDriver driver) {
        try {
          driver.close();
        } catch (CudaException e) {
          LOG.log(Level.WARNING, "releasing CUDA device " + d.device() + " failed", e);
        }
      }
    }
    open.clear();
  }
}
