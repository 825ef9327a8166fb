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
import java.util.Optional;
import java.util.function.Supplier;

/**
 * Whether UCX can be used here, probed once when this class loads, and why not.
 *
 * <p>The probe never throws: it checks for Linux and the {@value #DISABLE_PROPERTY} system
 * property, loads {@value #LIBRARY} through FFM and asks it {@code ucp_get_version}. It creates no
 * UCP context, so it opens no device and starts no thread; the {@code ucx} peer transport (JUCX)
 * loads the same library later. Whether UCX finds verbs or only TCP is UCX's business: see {@link
 * Rdma} for RDMA devices.
 *
 * <p>Loading libucs (which libucp needs) replaces the JVM's SIGILL, SIGBUS, SIGFPE and SIGSEGV
 * handlers with UCX's error handlers, and the JVM uses SIGSEGV for null checks and safepoint polls.
 * The probe puts the JVM's handlers back at once, first through {@code ucs_debug_disable_signals()}
 * as JUCX's {@code JNI_OnLoad} does, then by re-installing any handler that still differs from the
 * one saved before loading. {@code UCX_HANDLE_ERRORS=none} in the environment stops UCX from
 * installing them at all, closing the moment in between.
 */
public final class Ucx {
  /**
   * Set to {@code true} to make UCX unavailable (the {@code auto} peer transport then uses tcp).
   */
  public static final String DISABLE_PROPERTY = "sluice.ucx.disable";

  /** The UCP library, as Debian's and Ubuntu's {@code libucx0} install it. */
  public static final String LIBRARY = "libucp.so.0";

  private static final String UCS_LIBRARY = "libucs.so.0";

  /**
   * UCX's default {@code UCX_ERROR_SIGNALS}: ILL, BUS, FPE, SEGV (the same numbers on x86_64 and
   * arm64 Linux).
   */
  private static final int[] ERROR_SIGNALS = {4, 7, 8, 11};

  /** {@code struct sigaction} is 152 bytes in glibc and musl on 64-bit Linux; room to spare. */
  private static final long SIGACTION_BYTES = 256;

  private static final Result RESULT;

  static {
    RESULT =
        probe(
            System.getProperty("os.name"), System.getProperty(DISABLE_PROPERTY), Ucx::loadLibrary);
  }

  private Ucx() {}

  public static boolean isAvailable() {
    return RESULT.cause() == null;
  }

  /** Why UCX is unavailable, or null when it is available. */
  public static Throwable unavailabilityCause() {
    return RESULT.cause();
  }

  /**
   * @throws UnsupportedOperationException with {@link #unavailabilityCause()} chained, when
   *     unavailable
   */
  public static void ensureAvailability() {
    Probes.ensure("UCX", RESULT.cause());
  }

  /**
   * The loaded library's version, {@code major.minor.release} (e.g. {@code 1.13.1}), or null when
   * unavailable.
   */
  public static String version() {
    return RESULT.version();
  }

  /** What the probe found: a version, or the cause that there is none. */
  record Result(String version, Throwable cause) {
    static Result unavailable(String message, Throwable cause) {
      return new Result(null, new UnsupportedOperationException(message, cause));
    }
  }

  /** The probe's decision logic, with the library part injectable so tests can make it fail. */
  static Result probe(String osName, String disableProperty, Supplier<Result> library) {
    String refusal = Probes.refusal("UCX", osName, DISABLE_PROPERTY, disableProperty);
    if (refusal != null) {
      return Result.unavailable(refusal, null);
    }
    try {
      return library.get();
    } catch (Throwable t) {
      // e.g. native access denied (--illegal-native-access=deny)
      return Result.unavailable("UCX probe failed: " + t, t);
    }
  }

  static String versionString(int major, int minor, int release) {
    return major + "." + minor + "." + release;
  }

  @SuppressWarnings("restricted") // the module's purpose; run with --enable-native-access
  private static Result loadLibrary() {
    Linker linker = Linker.nativeLinker();
    MethodHandle sigaction =
        LibC.downcall("sigaction", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment[] saved = saveHandlers(sigaction, arena);
      SymbolLookup ucp;
      try {
        // Global: UCX is not made to be unloaded, and JUCX maps the same library again anyway.
        ucp = SymbolLookup.libraryLookup(LIBRARY, Arena.global());
      } catch (IllegalArgumentException e) {
        // A load that failed on a missing dependency may still have run libucs' constructor.
        restoreChangedHandlers(sigaction, saved);
        return Result.unavailable(LIBRARY + " not found (install libucx0)", e);
      }
      disableUcsSignals(linker);
      restoreChangedHandlers(sigaction, saved);

      Optional<MemorySegment> getVersion = ucp.find("ucp_get_version");
      if (getVersion.isEmpty()) {
        return Result.unavailable(LIBRARY + " has no symbol ucp_get_version: not UCX", null);
      }
      MethodHandle call =
          linker.downcallHandle(
              getVersion.get(), FunctionDescriptor.ofVoid(ADDRESS, ADDRESS, ADDRESS));
      MemorySegment major = arena.allocate(JAVA_INT);
      MemorySegment minor = arena.allocate(JAVA_INT);
      MemorySegment release = arena.allocate(JAVA_INT);
      try {
        call.invokeExact(major, minor, release);
      } catch (Throwable t) {
        return Result.unavailable("ucp_get_version failed: " + t, t);
      }
      return new Result(
          versionString(major.get(JAVA_INT, 0), minor.get(JAVA_INT, 0), release.get(JAVA_INT, 0)),
          null);
    }
  }

  private static MemorySegment[] saveHandlers(MethodHandle sigaction, Arena arena) {
    MemorySegment[] saved = new MemorySegment[ERROR_SIGNALS.length];
    for (int i = 0; i < ERROR_SIGNALS.length; i++) {
      saved[i] = arena.allocate(SIGACTION_BYTES, 8);
      sigaction(sigaction, ERROR_SIGNALS[i], MemorySegment.NULL, saved[i]);
    }
    return saved;
  }

  /** UCX's own way to give the error signals back, which also drops them from its bookkeeping. */
  @SuppressWarnings("restricted")
  private static void disableUcsSignals(Linker linker) {
    try {
      // Mapped already, as libucp's dependency.
      SymbolLookup.libraryLookup(UCS_LIBRARY, Arena.global())
          .find("ucs_debug_disable_signals")
          .ifPresent(
              symbol -> {
                try {
                  linker.downcallHandle(symbol, FunctionDescriptor.ofVoid()).invokeExact();
                } catch (Throwable t) {
                  // restoreChangedHandlers puts the JVM's handlers back regardless
                }
              });
    } catch (IllegalArgumentException e) {
      // a UCX without a separate libucs: restoreChangedHandlers still applies
    }
  }

  /** Re-installs the saved handler of every error signal whose handler changed since. */
  private static void restoreChangedHandlers(MethodHandle sigaction, MemorySegment[] saved) {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment now = arena.allocate(SIGACTION_BYTES, 8);
      for (int i = 0; i < ERROR_SIGNALS.length; i++) {
        sigaction(sigaction, ERROR_SIGNALS[i], MemorySegment.NULL, now);
        // sa_handler (a union with sa_sigaction) is the first field of struct sigaction on Linux
        if (now.get(JAVA_LONG, 0) != saved[i].get(JAVA_LONG, 0)) {
          sigaction(sigaction, ERROR_SIGNALS[i], saved[i], MemorySegment.NULL);
        }
      }
    }
  }

  private static void sigaction(
      MethodHandle sigaction, int signal, MemorySegment act, MemorySegment oldAct) {
    int rc;
    try {
      rc = (int) sigaction.invokeExact(signal, act, oldAct);
    } catch (Throwable t) {
      throw new IllegalStateException("sigaction signal=" + signal + " failed: " + t, t);
    }
    if (rc != 0) {
      throw new IllegalStateException("sigaction signal=" + signal + " returned " + rc);
    }
  }
}
