package io.sluice.nativeio;

import java.lang.foreign.MemorySegment;

/**
 * The device-memory calls a GPU delivery path makes, as {@link CudaDriver} answers them: device and
 * pinned host allocations, a stream, an asynchronous upload and its wait, and the CUDA IPC handle
 * of an allocation. An interface so the daemon's pool logic can also be driven by tests on hosts
 * without a GPU (their stand-in keeps "device" memory in host memory; it proves the bookkeeping,
 * never the GPU path).
 */
public interface DeviceMemory {
  /** The device's ordinal. */
  int device();

  /** {@code bytes} of device memory; its address. */
  long allocDevice(long bytes) throws CudaException;

  void freeDevice(long pointer) throws CudaException;

  /** {@code bytes} of page-locked host memory. */
  MemorySegment allocHost(long bytes) throws CudaException;

  void freeHost(MemorySegment host) throws CudaException;

  MemorySegment createStream() throws CudaException;

  /** Queues a copy of {@code bytes} from {@code src} to device address {@code dst}. */
  void copyToDeviceAsync(long dst, MemorySegment src, long bytes, MemorySegment stream)
      throws CudaException;

  /** Waits for everything queued on {@code stream}. */
  void synchronize(MemorySegment stream) throws CudaException;

  void destroyStream(MemorySegment stream) throws CudaException;

  /**
   * The CUDA IPC handle ({@value CudaDriver#IPC_HANDLE_BYTES} bytes) of the allocation at {@code
   * pointer}.
   */
  byte[] ipcHandle(long pointer) throws CudaException;
}
