package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * The few CUDA driver calls the GPU paths need, through FFM: a device's primary context, device and
 * pinned host memory, copies (synchronous and on a stream). Device pointers are plain {@code long}s
 * ({@code CUdeviceptr}), which cuFile and CUDA IPC take as they are (jcuda's pointer objects do not
 * give their address). Only where {@link Cuda#isAvailable()}. Each call makes the device's primary
 * context current on the calling thread first, so any thread may call.
 */
public final class CudaDriver implements DeviceMemory, AutoCloseable {
  /** Bytes of a {@code CUipcMemHandle}. */
  public static final int IPC_HANDLE_BYTES = 64;

  private final int device;
  private final int cuDevice; // the CUdevice cuDeviceGet gave for the ordinal
  private final MemorySegment context;
  private final MethodHandle ctxSetCurrent;
  private final MethodHandle primaryRelease;
  private final MethodHandle memAlloc;
  private final MethodHandle memFree;
  private final MethodHandle memAllocHost;
  private final MethodHandle memFreeHost;
  private final MethodHandle htod;
  private final MethodHandle dtoh;
  private final MethodHandle htodAsync;
  private final MethodHandle streamCreate;
  private final MethodHandle streamSynchronize;
  private final MethodHandle streamDestroy;
  private final MethodHandle ipcGetMemHandle;
  private boolean closed;

  @SuppressWarnings("restricted")
  private CudaDriver(int device) throws CudaException {
    this.device = device;
    SymbolLookup lib = SymbolLookup.libraryLookup(Cuda.DRIVER, Arena.global());
    Linker l = Linker.nativeLinker();
    FunctionDescriptor i = FunctionDescriptor.of(JAVA_INT, ADDRESS);
    MethodHandle retain =
        call(
            l, lib, "cuDevicePrimaryCtxRetain", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    MethodHandle get =
        call(l, lib, "cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    this.ctxSetCurrent = call(l, lib, "cuCtxSetCurrent", i);
    this.primaryRelease =
        call(l, lib, "cuDevicePrimaryCtxRelease_v2", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    this.memAlloc =
        call(l, lib, "cuMemAlloc_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    this.memFree = call(l, lib, "cuMemFree_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
    this.memAllocHost =
        call(l, lib, "cuMemAllocHost_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    this.memFreeHost = call(l, lib, "cuMemFreeHost", i);
    this.htod =
        call(
            l,
            lib,
            "cuMemcpyHtoD_v2",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG));
    this.dtoh =
        call(
            l,
            lib,
            "cuMemcpyDtoH_v2",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    this.htodAsync =
        call(
            l,
            lib,
            "cuMemcpyHtoDAsync_v2",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS));
    this.streamCreate =
        call(l, lib, "cuStreamCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    this.streamSynchronize = call(l, lib, "cuStreamSynchronize", i);
    this.streamDestroy = call(l, lib, "cuStreamDestroy_v2", i);
    this.ipcGetMemHandle =
        call(l, lib, "cuIpcGetMemHandle", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    try (Arena a = Arena.ofConfined()) {
      MemorySegment dev = a.allocate(JAVA_INT);
      check("cuDeviceGet(" + device + ")", (int) get.invokeExact(dev, device));
      this.cuDevice = dev.get(JAVA_INT, 0);
      MemorySegment ctx = a.allocate(ADDRESS);
      check("cuDevicePrimaryCtxRetain", (int) retain.invokeExact(ctx, cuDevice));
      this.context = ctx.get(ADDRESS, 0);
    } catch (CudaException e) {
      throw e;
    } catch (Throwable t) {
      throw new CudaException("CUDA driver setup failed: " + t, 0);
    }
  }

  /**
   * The driver for device {@code index}.
   *
   * @throws UnsupportedOperationException with {@link Cuda#unavailabilityCause()} where there is no
   *     GPU
   */
  public static CudaDriver open(int index) throws CudaException {
    Cuda.ensureAvailability();
    return new CudaDriver(index);
  }

  @Override
  public int device() {
    return device;
  }

  /** Makes this device's primary context current on the calling thread. */
  public void makeCurrent() throws CudaException {
    invoke("cuCtxSetCurrent", () -> (int) ctxSetCurrent.invokeExact(context));
  }

  /** {@code bytes} of device memory; its address. */
  @Override
  public long allocDevice(long bytes) throws CudaException {
    return withOut(
        "cuMemAlloc bytes=" + bytes,
        JAVA_LONG,
        p -> (int) memAlloc.invokeExact(p, bytes),
        p -> p.get(JAVA_LONG, 0));
  }

  @Override
  public void freeDevice(long pointer) throws CudaException {
    makeCurrent();
    invoke("cuMemFree", () -> (int) memFree.invokeExact(pointer));
  }

  /** {@code bytes} of page-locked host memory, as a segment (free it with {@link #freeHost}). */
  @SuppressWarnings("restricted")
  @Override
  public MemorySegment allocHost(long bytes) throws CudaException {
    return withOut(
        "cuMemAllocHost bytes=" + bytes,
        ADDRESS,
        p -> (int) memAllocHost.invokeExact(p, bytes),
        p -> p.get(ADDRESS, 0).reinterpret(bytes));
  }

  @Override
  public void freeHost(MemorySegment host) throws CudaException {
    makeCurrent();
    invoke("cuMemFreeHost", () -> (int) memFreeHost.invokeExact(host));
  }

  public void copyToDevice(long dst, MemorySegment src, long bytes) throws CudaException {
    makeCurrent();
    invoke("cuMemcpyHtoD bytes=" + bytes, () -> (int) htod.invokeExact(dst, src, bytes));
  }

  public void copyToHost(MemorySegment dst, long src, long bytes) throws CudaException {
    makeCurrent();
    invoke("cuMemcpyDtoH bytes=" + bytes, () -> (int) dtoh.invokeExact(dst, src, bytes));
  }

  /** A stream for {@link #copyToDeviceAsync}; destroy it with {@link #destroyStream}. */
  @Override
  public MemorySegment createStream() throws CudaException {
    return withOut(
        "cuStreamCreate",
        ADDRESS,
        p -> (int) streamCreate.invokeExact(p, 1), // CU_STREAM_NON_BLOCKING
        p -> p.get(ADDRESS, 0));
  }

  /** Queues a copy from pinned host memory; {@code src} must stay untouched until synchronized. */
  @Override
  public void copyToDeviceAsync(long dst, MemorySegment src, long bytes, MemorySegment stream)
      throws CudaException {
    makeCurrent();
    invoke(
        "cuMemcpyHtoDAsync bytes=" + bytes,
        () -> (int) htodAsync.invokeExact(dst, src, bytes, stream));
  }

  @Override
  public void synchronize(MemorySegment stream) throws CudaException {
    makeCurrent();
    invoke("cuStreamSynchronize", () -> (int) streamSynchronize.invokeExact(stream));
  }

  @Override
  public void destroyStream(MemorySegment stream) throws CudaException {
    makeCurrent();
    invoke("cuStreamDestroy", () -> (int) streamDestroy.invokeExact(stream));
  }

  /**
   * The CUDA IPC handle of the allocation at {@code pointer} (from {@link #allocDevice}): another
   * process on this host opens it ({@code cudaIpcOpenMemHandle}) to map the same device memory.
   */
  @Override
  public byte[] ipcHandle(long pointer) throws CudaException {
    return withOut(
        "cuIpcGetMemHandle",
        MemoryLayout.sequenceLayout(IPC_HANDLE_BYTES, JAVA_BYTE),
        h -> (int) ipcGetMemHandle.invokeExact(h, pointer),
        h -> h.toArray(JAVA_BYTE));
  }

  @FunctionalInterface
  private interface Call {
    int run() throws Throwable;
  }

  @FunctionalInterface
  private interface OutCall {
    int run(MemorySegment out) throws Throwable;
  }

  /**
   * Makes the context current, runs {@code call} with an out-parameter of {@code out}'s layout,
   * checks its result and returns what {@code read} takes from the out-parameter.
   */
  private <T> T withOut(
      String what,
      MemoryLayout out,
      OutCall call,
      java.util.function.Function<MemorySegment, T> read)
      throws CudaException {
    makeCurrent();
    try (Arena a = Arena.ofConfined()) {
      MemorySegment p = a.allocate(out);
      invoke(what, () -> call.run(p));
      return read.apply(p);
    }
  }

  private static void invoke(String what, Call call) throws CudaException {
    int rc;
    try {
      rc = call.run();
    } catch (Throwable t) {
      throw new CudaException(what + " failed: " + t, 0);
    }
    check(what, rc);
  }

  private static void check(String what, int rc) throws CudaException {
    if (rc != 0) {
      throw new CudaException(what + " failed: " + Cuda.error(rc), rc);
    }
  }

  @SuppressWarnings("restricted")
  private static MethodHandle call(
      Linker l, SymbolLookup lib, String symbol, FunctionDescriptor d) {
    return l.downcallHandle(
        lib.find(symbol)
            .orElseThrow(() -> new UnsatisfiedLinkError(Cuda.DRIVER + " has no symbol " + symbol)),
        d);
  }

  @Override
  public synchronized void close() throws CudaException {
    if (closed) {
      return;
    }
    closed = true;
    invoke("cuDevicePrimaryCtxRelease", () -> (int) primaryRelease.invokeExact(cuDevice));
  }
}
