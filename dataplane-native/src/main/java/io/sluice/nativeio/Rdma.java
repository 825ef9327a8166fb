package io.sluice.nativeio;

import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;
import java.util.stream.Stream;

/**
 * Whether RDMA verbs can be used here (a device and {@value #VERBS_LIBRARY}), and whether DiSNI
 * can, probed once when this class loads, with why not.
 *
 * <p>A device is an entry of {@code /sys/class/infiniband}: an InfiniBand or RoCE NIC, or a soft
 * device ({@code rdma_rxe}, {@code siw}). Port state is not checked; a device whose port is down
 * fails the first connection instead. DiSNI needs more: its JNI library {@code libdisni.so} (DiSNI
 * 2.0's jar ships none: it is built from DiSNI's sources) on {@code java.library.path} or {@code
 * LD_LIBRARY_PATH}, and {@code sun.nio.ch} exported to it, since it reads direct buffers' addresses
 * through {@code sun.nio.ch.DirectBuffer}. Nothing here loads DiSNI or opens a device.
 */
public final class Rdma {
  /** Where the kernel lists RDMA devices. */
  public static final String SYSFS_DEVICES = "/sys/class/infiniband";

  /** The verbs library (rdma-core's {@code libibverbs1}). */
  public static final String VERBS_LIBRARY = "libibverbs.so.1";

  /** DiSNI's JNI library's file name, as {@code System.loadLibrary("disni")} looks for it. */
  public static final String DISNI_LIBRARY = System.mapLibraryName("disni");

  static final String ADD_EXPORTS = "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED";

  private static final List<String> DEVICES;
  private static final Throwable UNAVAILABILITY_CAUSE;
  private static final Throwable DISNI_CAUSE;

  static {
    // None of these throws: a failure of any part becomes a cause.
    DEVICES = listDevices(Path.of(SYSFS_DEVICES));
    UNAVAILABILITY_CAUSE = probe(DEVICES, SYSFS_DEVICES, Rdma::loadVerbs);
    String javaLibraryPath = System.getProperty("java.library.path", "");
    String ldLibraryPath = System.getenv("LD_LIBRARY_PATH");
    DISNI_CAUSE =
        disniCause(
            UNAVAILABILITY_CAUSE,
            findLibrary(DISNI_LIBRARY, javaLibraryPath, ldLibraryPath),
            "java.library.path="
                + javaLibraryPath
                + " LD_LIBRARY_PATH="
                + (ldLibraryPath == null ? "(unset)" : ldLibraryPath),
            sunNioChExported());
  }

  private Rdma() {}

  /** Whether there is an RDMA device and the verbs library loads. */
  public static boolean isAvailable() {
    return UNAVAILABILITY_CAUSE == null;
  }

  /** Why RDMA verbs are unavailable, or null when they are available. */
  public static Throwable unavailabilityCause() {
    return UNAVAILABILITY_CAUSE;
  }

  /**
   * @throws UnsupportedOperationException with {@link #unavailabilityCause()} chained, when
   *     unavailable
   */
  public static void ensureAvailability() {
    Probes.ensure("RDMA", UNAVAILABILITY_CAUSE);
  }

  /** The RDMA devices' names ({@code mlx5_0}, {@code rxe0}), sorted; empty where there is none. */
  public static List<String> devices() {
    return DEVICES;
  }

  /** Whether DiSNI can run: RDMA available, its JNI library found, {@code sun.nio.ch} exported. */
  public static boolean isDisniAvailable() {
    return DISNI_CAUSE == null;
  }

  /**
   * Why DiSNI cannot run, naming every missing part, or null when it can. When RDMA itself is
   * unavailable, {@link #unavailabilityCause()} is chained.
   */
  public static Throwable disniCause() {
    return DISNI_CAUSE;
  }

  /** The entries of {@code dir}, sorted; empty when it is missing or unreadable. */
  static List<String> listDevices(Path dir) {
    try (Stream<Path> entries = Files.list(dir)) {
      return entries.map(p -> p.getFileName().toString()).sorted().toList();
    } catch (IOException | RuntimeException e) {
      return List.of();
    }
  }

  /** The probe's decision logic, with the library part injectable so tests can make it fail. */
  static Throwable probe(List<String> devices, String dir, Supplier<Throwable> verbsLibrary) {
    if (devices.isEmpty()) {
      return new UnsupportedOperationException(
          "no RDMA device: " + dir + " is empty or missing (no RDMA NIC, no rdma_rxe or siw)");
    }
    try {
      return verbsLibrary.get();
    } catch (Throwable t) {
      // e.g. native access denied (--illegal-native-access=deny)
      return new UnsupportedOperationException("verbs probe failed: " + t, t);
    }
  }

  @SuppressWarnings("restricted") // the module's purpose; run with --enable-native-access
  private static Throwable loadVerbs() {
    // Loaded to see that it loads, then unloaded: whoever uses verbs (UCX, DiSNI) loads its own.
    try (Arena arena = Arena.ofConfined()) {
      SymbolLookup verbs = SymbolLookup.libraryLookup(VERBS_LIBRARY, arena);
      if (verbs.find("ibv_get_device_list").isEmpty()) {
        return new UnsupportedOperationException(
            VERBS_LIBRARY + " has no symbol ibv_get_device_list: not libibverbs");
      }
      return null;
    } catch (IllegalArgumentException e) {
      return new UnsupportedOperationException(
          VERBS_LIBRARY + " not found (install libibverbs1 and ibverbs-providers)", e);
    }
  }

  /**
   * The first regular file named {@code fileName} in the directories of the {@code paths} (each a
   * {@link File#pathSeparator}-separated list, null allowed), or null.
   */
  static Path findLibrary(String fileName, String... paths) {
    Set<String> dirs = new LinkedHashSet<>();
    for (String path : paths) {
      if (path != null) {
        for (String dir : path.split(File.pathSeparator)) {
          if (!dir.isEmpty()) {
            dirs.add(dir);
          }
        }
      }
    }
    for (String dir : dirs) {
      try {
        Path candidate = Path.of(dir, fileName);
        if (Files.isRegularFile(candidate)) {
          return candidate;
        }
      } catch (RuntimeException e) {
        // an entry that is not a path: skip it, as the JVM's loader does
      }
    }
    return null;
  }

  /** Whether DiSNI, on the class path, may read {@code sun.nio.ch.DirectBuffer}. */
  private static boolean sunNioChExported() {
    return Object.class.getModule().isExported("sun.nio.ch", Rdma.class.getModule());
  }

  /** DiSNI's decision logic: every missing part, in one message. */
  static Throwable disniCause(
      Throwable rdmaCause, Path disniLibrary, String searched, boolean sunNioChExported) {
    List<String> missing = new ArrayList<>();
    if (disniLibrary == null) {
      missing.add(
          DISNI_LIBRARY
              + " not found on "
              + searched
              + " (DiSNI 2.0 ships no native library: build it from DiSNI's sources)");
    }
    if (!sunNioChExported) {
      missing.add("sun.nio.ch is not exported to DiSNI: run the JVM with " + ADD_EXPORTS);
    }
    if (rdmaCause != null) {
      missing.add(rdmaCause.getMessage());
    }
    return missing.isEmpty()
        ? null
        : new UnsupportedOperationException(String.join("; ", missing), rdmaCause);
  }
}
