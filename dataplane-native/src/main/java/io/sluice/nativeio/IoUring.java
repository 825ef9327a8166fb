package io.sluice.nativeio;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * Whether io_uring can be used here, probed once when this class loads, and why not.
 *
 * <p>The probe never throws: it checks the platform (Linux x86_64), the {@value #DISABLE_PROPERTY}
 * system property, then opens a small ring through {@link Ring}, checks that the kernel implements
 * {@code IORING_OP_READ} and round-trips one NOP. Any failure becomes {@link
 * #unavailabilityCause()}, with a message that says what to change (kernel, sysctl, seccomp).
 * Modelled on Netty's {@code io.netty.channel.uring.IoUring}.
 */
public final class IoUring {
  /** Set to {@code true} to make io_uring unavailable (forces the posix fallback). */
  public static final String DISABLE_PROPERTY = "sluice.io_uring.disable";

  private static final Path IO_URING_DISABLED_SYSCTL =
      Path.of("/proc/sys/kernel/io_uring_disabled");
  private static final Throwable PLATFORM_CAUSE;
  private static final Throwable UNAVAILABILITY_CAUSE;

  static {
    // Neither call throws: probe() turns anything the kernel part throws into the cause.
    PLATFORM_CAUSE = platformCause(System.getProperty("os.name"), System.getProperty("os.arch"));
    UNAVAILABILITY_CAUSE =
        probe(PLATFORM_CAUSE, System.getProperty(DISABLE_PROPERTY), IoUring::probeKernel);
  }

  private IoUring() {}

  public static boolean isAvailable() {
    return UNAVAILABILITY_CAUSE == null;
  }

  /** Why io_uring is unavailable, or null when it is available. */
  public static Throwable unavailabilityCause() {
    return UNAVAILABILITY_CAUSE;
  }

  /**
   * @throws UnsupportedOperationException with {@link #unavailabilityCause()} chained, when
   *     unavailable
   */
  public static void ensureAvailability() {
    Probes.ensure("io_uring", UNAVAILABILITY_CAUSE);
  }

  /** Fails unless this is Linux x86_64, where {@link NativeFile} and {@link Ring} work. */
  static void ensurePlatform() {
    if (PLATFORM_CAUSE != null) {
      throw new UnsupportedOperationException(PLATFORM_CAUSE.getMessage(), PLATFORM_CAUSE);
    }
  }

  static Throwable platformCause(String osName, String osArch) {
    String os = String.valueOf(osName).toLowerCase(Locale.ROOT);
    String arch = String.valueOf(osArch).toLowerCase(Locale.ROOT);
    if (os.startsWith("linux") && (arch.equals("amd64") || arch.equals("x86_64"))) {
      return null;
    }
    // Other Linux architectures share the io_uring syscall numbers but not every constant used
    // here (O_DIRECT differs on arm64): refuse rather than guess.
    return new UnsupportedOperationException(
        "not Linux x86_64: os.name=" + osName + " os.arch=" + osArch);
  }

  /** The probe's decision logic, with the kernel part injectable so tests can make it fail. */
  static Throwable probe(
      Throwable platformCause, String disableProperty, Supplier<Throwable> kernel) {
    if (platformCause != null) {
      return platformCause;
    }
    if (Boolean.parseBoolean(disableProperty)) {
      return new UnsupportedOperationException(
          "io_uring disabled by -D" + DISABLE_PROPERTY + "=" + disableProperty);
    }
    try {
      return kernel.get();
    } catch (Throwable t) {
      // e.g. native access denied (--illegal-native-access=deny), libc symbol missing
      return new UnsupportedOperationException("io_uring probe failed: " + t, t);
    }
  }

  private static Throwable probeKernel() {
    try (Ring ring = Ring.open(4)) {
      if (!ring.supportsOp(RingDescriptor.IORING_OP_READ)) {
        return new UnsupportedOperationException(
            "kernel io_uring lacks IORING_OP_READ (Linux 5.6 or newer needed)");
      }
      long token = 0x5EED;
      ring.prepareNop(token);
      ring.submitAndWait(1);
      long[] seen = {-1, -1};
      ring.reap(
          (userData, result, flags) -> {
            seen[0] = userData;
            seen[1] = result;
          });
      if (seen[0] != token || seen[1] != 0) {
        return new IllegalStateException(
            "io_uring NOP round trip failed: user_data=" + seen[0] + " res=" + seen[1]);
      }
      return null;
    } catch (NativeIoException e) {
      return explain(e, readSysctl());
    }
  }

  private static String readSysctl() {
    try {
      return Files.readString(IO_URING_DISABLED_SYSCTL).strip();
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /** Turns a failed setup into advice. */
  static Throwable explain(NativeIoException e, String ioUringDisabledSysctl) {
    String why =
        switch (e.errno()) {
          case Errno.ENOSYS -> "ENOSYS (kernel without io_uring: Linux 5.1+ built with it needed)";
          case Errno.EPERM ->
              switch (String.valueOf(ioUringDisabledSysctl)) {
                case "2" -> "EPERM (io_uring disabled by sysctl kernel.io_uring_disabled=2)";
                case "1" ->
                    "EPERM (sysctl kernel.io_uring_disabled=1: only members of"
                        + " kernel.io_uring_group may use io_uring)";
                default ->
                    "EPERM (blocked by a seccomp filter or container policy; sysctl"
                        + " kernel.io_uring_disabled="
                        + ioUringDisabledSysctl
                        + ")";
              };
          case Errno.ENOMEM ->
              "ENOMEM (ring memory over RLIMIT_MEMLOCK: raise it, or use Linux 5.12+)";
          default -> Errno.describe(e.errno());
        };
    String call = e.getMessage().startsWith("io_uring_setup") ? "io_uring_setup" : "io_uring";
    return new UnsupportedOperationException(call + " failed: " + why, e);
  }
}
