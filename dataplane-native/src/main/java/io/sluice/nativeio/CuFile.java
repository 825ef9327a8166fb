package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * cuFile (GPUDirect Storage) through FFM: the driver, file handles on {@code O_DIRECT} descriptors,
 * registered device buffers and reads from a file straight into device memory. Only where {@link
 * Gds#isAvailable()}; in compatibility mode ({@link Gds#mode()}) cuFile reads through a bounce
 * buffer itself, with the same calls. Device pointers are plain addresses ({@code CUdeviceptr}),
 * from jcuda or the driver API. Thread-safe, as cuFile is.
 *
 * <pre>
 * CUfileDescr_t (24 bytes): type i32 (1 = CU_FILE_HANDLE_TYPE_OPAQUE_FD) | pad 4
 *                          | handle union { fd i32 ; void* } 8 | fs_ops ptr 8
 * CUfileError_t (8 bytes): err i32 (CUfileOpError) | cu_err i32 (CUresult)
 * </pre>
 */
public final class CuFile implements AutoCloseable {
  static final StructLayout DESCR =
      MemoryLayout.structLayout(
          JAVA_INT.withName("type"),
          MemoryLayout.paddingLayout(4),
          JAVA_LONG.withName("handle"),
          ADDRESS.withName("fs_ops"));

  private static final int CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1;

  private final MethodHandle driverClose;
  private final MethodHandle handleRegister;
  private final MethodHandle handleDeregister;
  private final MethodHandle bufRegister;
  private final MethodHandle bufDeregister;
  private final MethodHandle read;
  private final Arena arena = Arena.ofShared();
  private boolean closed;

  private CuFile(SymbolLookup lib, Linker linker) throws CuFileException {
    FunctionDescriptor err = FunctionDescriptor.of(Gds.CUFILE_ERROR);
    MethodHandle open = downcall(linker, lib, "cuFileDriverOpen", err);
    this.driverClose =
        downcall(
            linker,
            lib,
            lib.find("cuFileDriverClose_v2").isPresent()
                ? "cuFileDriverClose_v2"
                : "cuFileDriverClose",
            err);
    this.handleRegister =
        downcall(
            linker,
            lib,
            "cuFileHandleRegister",
            FunctionDescriptor.of(Gds.CUFILE_ERROR, ADDRESS, ADDRESS));
    this.handleDeregister =
        downcall(linker, lib, "cuFileHandleDeregister", FunctionDescriptor.ofVoid(ADDRESS));
    this.bufRegister =
        downcall(
            linker,
            lib,
            "cuFileBufRegister",
            FunctionDescriptor.of(Gds.CUFILE_ERROR, JAVA_LONG, JAVA_LONG, JAVA_INT));
    this.bufDeregister =
        downcall(
            linker, lib, "cuFileBufDeregister", FunctionDescriptor.of(Gds.CUFILE_ERROR, JAVA_LONG));
    this.read =
        downcall(
            linker,
            lib,
            "cuFileRead",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    check("cuFileDriverOpen", invokeError(open));
  }

  /**
   * Opens the cuFile driver (once per process is enough; each open is matched by {@link #close()}).
   *
   * @throws UnsupportedOperationException with {@link Gds#unavailabilityCause()} where there is
   *     none
   */
  @SuppressWarnings("restricted")
  public static CuFile open() throws CuFileException {
    Gds.ensureAvailability();
    String name = Gds.library();
    SymbolLookup lib =
        name.contains("/")
            ? SymbolLookup.libraryLookup(Path.of(name), Arena.global())
            : SymbolLookup.libraryLookup(name, Arena.global());
    return new CuFile(lib, Linker.nativeLinker());
  }

  /** A file registered with cuFile; close it before the {@link NativeFile}. */
  public final class Handle implements AutoCloseable {
    private final MemorySegment handle;
    private final NativeFile file;

    private Handle(MemorySegment handle, NativeFile file) {
      this.handle = handle;
      this.file = file;
    }

    /**
     * Reads {@code length} bytes at {@code fileOffset} into the device buffer at {@code
     * devicePointer + deviceOffset}; returns the bytes read (short only at the end of the file).
     */
    public long read(long devicePointer, long length, long fileOffset, long deviceOffset)
        throws CuFileException {
      long n;
      try {
        n = (long) read.invokeExact(handle, devicePointer, length, fileOffset, deviceOffset);
      } catch (Throwable t) {
        throw new CuFileException("cuFileRead " + file.path() + " failed: " + t, 0);
      }
      if (n < 0) {
        throw new CuFileException(
            "cuFileRead "
                + file.path()
                + " offset="
                + fileOffset
                + " length="
                + length
                + " failed: "
                + (n == -1 ? "errno (see the cuFile log)" : "CUfileOpError " + -n),
            (int) -n);
      }
      return n;
    }

    @Override
    public void close() {
      try {
        handleDeregister.invokeExact(handle);
      } catch (Throwable t) {
        throw new IllegalStateException("cuFileHandleDeregister " + file.path() + ": " + t, t);
      }
    }
  }

  /** Registers {@code file} (opened with {@code O_DIRECT} for true GDS) with cuFile. */
  public Handle register(NativeFile file) throws CuFileException {
    MemorySegment descr = arena.allocate(DESCR);
    descr.set(JAVA_INT, 0, CU_FILE_HANDLE_TYPE_OPAQUE_FD);
    descr.set(JAVA_INT, 8, file.fd()); // the union's int member
    descr.set(ADDRESS, 16, MemorySegment.NULL);
    MemorySegment handle = arena.allocate(ADDRESS);
    MemorySegment err;
    try {
      err = (MemorySegment) handleRegister.invokeExact((SegmentAllocator) arena, handle, descr);
    } catch (Throwable t) {
      throw new CuFileException("cuFileHandleRegister " + file.path() + " failed: " + t, 0);
    }
    check("cuFileHandleRegister " + file.path(), err);
    return new Handle(handle.get(ADDRESS, 0), file);
  }

  /** Registers a device buffer for reads (optional, faster for buffers read into many times). */
  public void registerBuffer(long devicePointer, long length) throws CuFileException {
    try {
      check(
          "cuFileBufRegister length=" + length,
          (MemorySegment)
              bufRegister.invokeExact((SegmentAllocator) arena, devicePointer, length, 0));
    } catch (CuFileException e) {
      throw e;
    } catch (Throwable t) {
      throw new CuFileException("cuFileBufRegister failed: " + t, 0);
    }
  }

  public void deregisterBuffer(long devicePointer) throws CuFileException {
    try {
      check(
          "cuFileBufDeregister",
          (MemorySegment) bufDeregister.invokeExact((SegmentAllocator) arena, devicePointer));
    } catch (CuFileException e) {
      throw e;
    } catch (Throwable t) {
      throw new CuFileException("cuFileBufDeregister failed: " + t, 0);
    }
  }

  private MemorySegment invokeError(MethodHandle call) throws CuFileException {
    try {
      return (MemorySegment) call.invokeExact((SegmentAllocator) arena);
    } catch (Throwable t) {
      throw new CuFileException("cuFile call failed: " + t, 0);
    }
  }

  private static void check(String what, MemorySegment err) throws CuFileException {
    int code = err.get(JAVA_INT, 0);
    if (code != 0) {
      int cu = err.get(JAVA_INT, 4);
      throw new CuFileException(
          what + " failed: CUfileOpError " + code + (cu != 0 ? ", " + Cuda.error(cu) : ""), code);
    }
  }

  @SuppressWarnings("restricted")
  private static MethodHandle downcall(
      Linker linker, SymbolLookup lib, String symbol, FunctionDescriptor d) {
    return linker.downcallHandle(
        lib.find(symbol)
            .orElseThrow(() -> new UnsatisfiedLinkError(Gds.LIBRARY + " has no symbol " + symbol)),
        d);
  }

  @Override
  public synchronized void close() throws CuFileException {
    if (closed) {
      return;
    }
    closed = true;
    try {
      check("cuFileDriverClose", invokeError(driverClose));
    } finally {
      arena.close();
    }
  }
}
