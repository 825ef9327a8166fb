package io.sluice.server;

import io.sluice.nativeio.CudaDriver;
import io.sluice.nativeio.CudaException;
import io.sluice.nativeio.DeviceMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * A stand-in for a GPU in tests on hosts without one: "device" allocations are host memory, an
 * upload is a plain copy, the IPC handle encodes the address. It checks the bookkeeping of the
 * daemon's device pools (every allocation freed once, copies inside allocations), never the GPU.
 */
final class HostDeviceMemory implements DeviceMemory {
  private final Arena arena = Arena.ofShared();
  final Map<Long, MemorySegment> device = new HashMap<>();
  final Map<Long, MemorySegment> host = new HashMap<>();
  int streams;
  int deviceFrees;

  @Override
  public int device() {
    return 0;
  }

  @Override
  public synchronized long allocDevice(long bytes) {
    MemorySegment s = arena.allocate(bytes, 256);
    device.put(s.address(), s);
    return s.address();
  }

  @Override
  public synchronized void freeDevice(long pointer) throws CudaException {
    if (device.remove(pointer) == null) {
      throw new CudaException("freeDevice of " + pointer + ": not allocated (or freed twice)", 1);
    }
    deviceFrees++;
  }

  @Override
  public synchronized MemorySegment allocHost(long bytes) {
    MemorySegment s = arena.allocate(bytes, 64);
    host.put(s.address(), s);
    return s;
  }

  @Override
  public synchronized void freeHost(MemorySegment h) throws CudaException {
    if (host.remove(h.address()) == null) {
      throw new CudaException("freeHost: not allocated (or freed twice)", 1);
    }
  }

  @Override
  public synchronized MemorySegment createStream() {
    streams++;
    return MemorySegment.ofAddress(streams);
  }

  @Override
  public synchronized void copyToDeviceAsync(
      long dst, MemorySegment src, long bytes, MemorySegment stream) throws CudaException {
    for (MemorySegment s : device.values()) {
      if (dst >= s.address() && dst + bytes <= s.address() + s.byteSize()) {
        MemorySegment.copy(src, 0, s, dst - s.address(), bytes);
        return;
      }
    }
    throw new CudaException(
        "copy of " + bytes + " bytes to " + dst + " outside every allocation", 1);
  }

  @Override
  public void synchronize(MemorySegment stream) {}

  @Override
  public synchronized void destroyStream(MemorySegment stream) {
    streams--;
  }

  @Override
  public byte[] ipcHandle(long pointer) {
    MemorySegment h = MemorySegment.ofArray(new byte[CudaDriver.IPC_HANDLE_BYTES]);
    h.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, pointer);
    return h.toArray(ValueLayout.JAVA_BYTE);
  }

  /** The "device" bytes at {@code pointer + offset}. */
  synchronized MemorySegment at(long pointer, long offset, long bytes) {
    return device.get(pointer).asSlice(offset, bytes);
  }
}
