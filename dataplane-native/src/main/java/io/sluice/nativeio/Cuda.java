package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Whether a CUDA GPU can be used here, probed once when this class loads, and why not.
 *
 * <p>The probe goes to the driver API ({@value #DRIVER}) through FFM: {@code cuInit}, {@code
 * cuDriverGetVersion}, {@code cuDeviceGetCount}, and each device's name and memory. It never loads
 * jcuda, whose native libraries would be unpacked into the temp folder on every machine, GPU or
 * not; the GPU paths use jcuda (its runtime has CUDA 12.0 linked in and needs only this driver)
 * once this says yes. The probe never throws: each way to fail becomes a cause naming what is
 * missing, as {@code delivery=cuda} and the hardware tests report it.
 */
public final class Cuda {
  /** Set to {@code true} to make CUDA unavailable (every GPU path then falls back). */
  public static final String DISABLE_PROPERTY = "sluice.cuda.disable";

  /** The CUDA driver library, installed with the NVIDIA driver. */
  public static final String DRIVER = "libcuda.so.1";

  /** One GPU as the driver reports it. */
  public record Device(int index, String name, long totalMemoryBytes) {}

  /** What the probe found: devices and the driver's version, or the cause there are none. */
  record Result(List<Device> devices, String driverVersion, Throwable cause) {
    static Result unavailable(String message, Throwable cause) {
      return new Result(List.of(), null, new UnsupportedOperationException(message, cause));
    }
  }

  /** The driver API's errors a probe meets, by {@code CUresult} value (cuda.h). */
  private static final Map<Integer, String> ERRORS =
      Map.ofEntries(
          Map.entry(1, "CUDA_ERROR_INVALID_VALUE"),
          Map.entry(2, "CUDA_ERROR_OUT_OF_MEMORY"),
          Map.entry(3, "CUDA_ERROR_NOT_INITIALIZED"),
          Map.entry(4, "CUDA_ERROR_DEINITIALIZED"),
          Map.entry(34, "CUDA_ERROR_STUB_LIBRARY"),
          Map.entry(35, "CUDA_ERROR_INSUFFICIENT_DRIVER"),
          Map.entry(46, "CUDA_ERROR_DEVICES_UNAVAILABLE"),
          Map.entry(100, "CUDA_ERROR_NO_DEVICE"),
          Map.entry(101, "CUDA_ERROR_INVALID_DEVICE"),
          Map.entry(304, "CUDA_ERROR_OPERATING_SYSTEM"),
          Map.entry(999, "CUDA_ERROR_UNKNOWN"));

  private static final Result RESULT =
      probe(System.getProperty("os.name"), System.getProperty(DISABLE_PROPERTY), Cuda::askDriver);

  private Cuda() {}

  public static boolean isAvailable() {
    return RESULT.cause() == null;
  }

  /** Why no GPU can be used, or null when one can. */
  public static Throwable unavailabilityCause() {
    return RESULT.cause();
  }

  /**
   * @throws UnsupportedOperationException with {@link #unavailabilityCause()} chained, when
   *     unavailable
   */
  public static void ensureAvailability() {
    Probes.ensure("CUDA", RESULT.cause());
  }

  /** The GPUs, empty when unavailable. */
  public static List<Device> devices() {
    return RESULT.devices();
  }

  /** The driver's CUDA version, {@code major.minor} (e.g. {@code 12.4}), or null. */
  public static String driverVersion() {
    return RESULT.driverVersion();
  }

  /** The name of a {@code CUresult}, e.g. {@code CUDA_ERROR_NO_DEVICE (100)}. */
  static String error(int code) {
    return ERRORS.getOrDefault(code, "CUresult") + " (" + code + ")";
  }

  /** The probe's decision logic, with the driver part injectable so tests can make it fail. */
  static Result probe(String osName, String disableProperty, Supplier<Result> driver) {
    String refusal = Probes.refusal("CUDA", osName, DISABLE_PROPERTY, disableProperty);
    if (refusal != null) {
      return Result.unavailable(refusal, null);
    }
    try {
      return driver.get();
    } catch (Throwable t) {
      // e.g. native access denied (--illegal-native-access=deny)
      return Result.unavailable("CUDA probe failed: " + t, t);
    }
  }

  @SuppressWarnings("restricted") // the module's purpose; run with --enable-native-access
  private static Result askDriver() {
    SymbolLookup cuda;
    try {
      cuda = SymbolLookup.libraryLookup(DRIVER, Arena.global());
    } catch (IllegalArgumentException e) {
      return Result.unavailable("no CUDA driver: " + DRIVER + " not found", e);
    }
    Linker linker = Linker.nativeLinker();
    try (Arena arena = Arena.ofConfined()) {
      int rc =
          (int)
              call(linker, cuda, "cuInit", FunctionDescriptor.of(JAVA_INT, JAVA_INT))
                  .invokeExact(0);
      if (rc != 0) {
        return Result.unavailable("cuInit failed: " + error(rc), null);
      }
      MemorySegment n = arena.allocate(JAVA_INT);
      rc =
          (int)
              call(linker, cuda, "cuDriverGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS))
                  .invokeExact(n);
      String version =
          rc == 0 ? n.get(JAVA_INT, 0) / 1000 + "." + n.get(JAVA_INT, 0) % 1000 / 10 : null;
      rc =
          (int)
              call(linker, cuda, "cuDeviceGetCount", FunctionDescriptor.of(JAVA_INT, ADDRESS))
                  .invokeExact(n);
      if (rc != 0) {
        return Result.unavailable("cuDeviceGetCount failed: " + error(rc), null);
      }
      int count = n.get(JAVA_INT, 0);
      if (count == 0) {
        return Result.unavailable(
            "no CUDA device: the driver (CUDA " + version + ") sees none", null);
      }
      MethodHandle get =
          call(linker, cuda, "cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
      MethodHandle name =
          call(
              linker,
              cuda,
              "cuDeviceGetName",
              FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
      MethodHandle memory =
          call(
              linker,
              cuda,
              "cuDeviceTotalMem_v2",
              FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
      List<Device> devices = new ArrayList<>();
      MemorySegment handle = arena.allocate(JAVA_INT);
      MemorySegment text = arena.allocate(256);
      MemorySegment bytes = arena.allocate(JAVA_LONG);
      for (int i = 0; i < count; i++) {
        rc = (int) get.invokeExact(handle, i);
        if (rc != 0) {
          return Result.unavailable("cuDeviceGet(" + i + ") failed: " + error(rc), null);
        }
        int device = handle.get(JAVA_INT, 0);
        rc = (int) name.invokeExact(text, 256, device);
        String label = rc == 0 ? text.getString(0) : "device " + i;
        rc = (int) memory.invokeExact(bytes, device);
        devices.add(new Device(i, label, rc == 0 ? bytes.get(JAVA_LONG, 0) : -1));
      }
      return new Result(List.copyOf(devices), version, null);
    } catch (Throwable t) {
      return Result.unavailable("CUDA driver call failed: " + t, t);
    }
  }

  @SuppressWarnings("restricted")
  private static MethodHandle call(
      Linker linker, SymbolLookup lib, String symbol, FunctionDescriptor descriptor) {
    return linker.downcallHandle(
        lib.find(symbol)
            .orElseThrow(() -> new UnsatisfiedLinkError(DRIVER + " has no symbol " + symbol)),
        descriptor);
  }
}
