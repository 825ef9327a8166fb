package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;

/**
 * Whether GPUDirect Storage (cuFile) can be used here, probed once when this class loads, and why
 * not; and, where it can, whether reads go disk to GPU ({@link Mode#GDS}, the {@code nvidia-fs}
 * kernel module is loaded) or through cuFile's compatibility mode ({@link Mode#COMPAT}: a POSIX
 * read into a bounce buffer and a copy, what a VM gets, and still correct).
 *
 * <p>The probe needs {@link Cuda} first, then loads {@value #LIBRARY} through FFM (from {@value
 * #LIBRARY_PROPERTY} or {@value #LIBRARY_ENV} when set, for the pip wheel's copy under {@code
 * site-packages/nvidia/cufile/lib}), opens the cuFile driver and closes it again. It never throws.
 */
public final class Gds {
  public static final String DISABLE_PROPERTY = "sluice.gds.disable";

  /** The cuFile library's soname. */
  public static final String LIBRARY = "libcufile.so.0";

  /** A full path to the cuFile library, taking precedence over the loader's search. */
  public static final String LIBRARY_PROPERTY = "sluice.cufile.library";

  public static final String LIBRARY_ENV = "SLUICE_CUFILE_LIBRARY";

  /** How cuFile reads when it can. */
  public enum Mode {
    /** Storage DMA straight into GPU memory (nvidia-fs loaded). */
    GDS,
    /** POSIX read plus a copy inside cuFile (no nvidia-fs). */
    COMPAT
  }

  /** {@code CUfileError_t}: the cuFile error and, for CUDA errors, the {@code CUresult}. */
  static final StructLayout CUFILE_ERROR =
      MemoryLayout.structLayout(JAVA_INT.withName("err"), JAVA_INT.withName("cu_err"));

  record Result(Mode mode, String library, Throwable cause) {
    static Result unavailable(String message, Throwable cause) {
      return new Result(null, null, new UnsupportedOperationException(message, cause));
    }
  }

  private static final Result RESULT =
      probe(
          System.getProperty("os.name"),
          System.getProperty(DISABLE_PROPERTY),
          Cuda.isAvailable() ? null : Cuda.unavailabilityCause(),
          Gds::openDriver);

  private Gds() {}

  public static boolean isAvailable() {
    return RESULT.cause() == null;
  }

  /** Why cuFile cannot be used, or null when it can. */
  public static Throwable unavailabilityCause() {
    return RESULT.cause();
  }

  /**
   * @throws UnsupportedOperationException with {@link #unavailabilityCause()} chained, when
   *     unavailable
   */
  public static void ensureAvailability() {
    Probes.ensure("GDS", RESULT.cause());
  }

  /** True GDS or compatibility mode; null when unavailable. */
  public static Mode mode() {
    return RESULT.mode();
  }

  /** The library that was loaded (soname or path); null when unavailable. */
  public static String library() {
    return RESULT.library();
  }

  /** The mode the kernel allows: GDS when the nvidia-fs module is loaded. */
  static Mode kernelMode(Path procNvidiaFs, Path sysModule) {
    return Files.exists(procNvidiaFs) || Files.exists(sysModule) ? Mode.GDS : Mode.COMPAT;
  }

  /** The library to load: the configured path, else the soname. */
  static String libraryName(String property, String env) {
    if (property != null && !property.isBlank()) {
      return property;
    }
    return env != null && !env.isBlank() ? env : LIBRARY;
  }

  static Result probe(
      String osName, String disableProperty, Throwable cudaCause, Supplier<Result> driver) {
    String refusal = Probes.refusal("GDS", osName, DISABLE_PROPERTY, disableProperty);
    if (refusal != null) {
      return Result.unavailable(refusal, null);
    }
    if (cudaCause != null) {
      return Result.unavailable("needs CUDA: " + cudaCause.getMessage(), cudaCause);
    }
    try {
      return driver.get();
    } catch (Throwable t) {
      return Result.unavailable("cuFile probe failed: " + t, t);
    }
  }

  @SuppressWarnings("restricted") // the module's purpose; run with --enable-native-access
  private static Result openDriver() {
    String name = libraryName(System.getProperty(LIBRARY_PROPERTY), System.getenv(LIBRARY_ENV));
    SymbolLookup cufile;
    try {
      cufile =
          name.contains("/")
              ? SymbolLookup.libraryLookup(Path.of(name), Arena.global())
              : SymbolLookup.libraryLookup(name, Arena.global());
    } catch (IllegalArgumentException e) {
      return Result.unavailable(
          name
              + " not found (install NVIDIA's cuFile: libcufile0, or the nvidia-cufile wheel and"
              + " -D"
              + LIBRARY_PROPERTY
              + "=.../nvidia/cufile/lib/libcufile.so.0)",
          e);
    }
    Linker linker = Linker.nativeLinker();
    try (Arena arena = Arena.ofConfined()) {
      MethodHandle open = errorCall(linker, cufile, "cuFileDriverOpen");
      MemorySegment err =
          (MemorySegment) open.invokeExact((java.lang.foreign.SegmentAllocator) arena);
      int code = err.get(JAVA_INT, 0);
      if (code != 0) {
        return Result.unavailable(
            "cuFileDriverOpen failed: CUfileOpError "
                + code
                + (err.get(JAVA_INT, 4) != 0 ? ", " + Cuda.error(err.get(JAVA_INT, 4)) : ""),
            null);
      }
      String close =
          cufile.find("cuFileDriverClose_v2").isPresent()
              ? "cuFileDriverClose_v2"
              : "cuFileDriverClose";
      MemorySegment ignored =
          (MemorySegment)
              errorCall(linker, cufile, close)
                  .invokeExact((java.lang.foreign.SegmentAllocator) arena);
      return new Result(
          kernelMode(Path.of("/proc/driver/nvidia-fs"), Path.of("/sys/module/nvidia_fs")),
          name,
          null);
    } catch (Throwable t) {
      return Result.unavailable("cuFile driver call failed: " + t, t);
    }
  }

  @SuppressWarnings("restricted")
  private static MethodHandle errorCall(Linker linker, SymbolLookup lib, String symbol) {
    return linker.downcallHandle(
        lib.find(symbol)
            .orElseThrow(() -> new UnsatisfiedLinkError(LIBRARY + " has no symbol " + symbol)),
        FunctionDescriptor.of(CUFILE_ERROR));
  }
}
