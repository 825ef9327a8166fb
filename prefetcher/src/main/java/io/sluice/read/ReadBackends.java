package io.sluice.read;

import io.sluice.nativeio.IoUring;
import java.io.UncheckedIOException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Picks the read backend {@code --backend} names: {@code auto} (io_uring where it works, else
 * posix, saying why once), {@code io_uring} or {@code io_uring+direct} (files opened O_DIRECT; both
 * fail fast with the cause where io_uring does not work) or {@code posix}.
 */
public final class ReadBackends {
  public static final String AUTO = "auto";

  /** io_uring with files opened {@code O_DIRECT}: cold data skips the page cache's copy. */
  public static final String IO_URING_DIRECT = "io_uring+direct";

  public static final String CHOICES = "auto, posix, io_uring, io_uring+direct";

  private static final Logger LOG = Logger.getLogger(ReadBackends.class.getName());
  private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();

  private ReadBackends() {}

  /**
   * @throws IllegalArgumentException for an unknown choice
   * @throws IllegalStateException when {@code io_uring} is chosen and unavailable, cause chained
   */
  public static ReadBackend select(String choice) {
    return switch (checkChoice(choice)) {
      case PosixReadBackend.NAME -> new PosixReadBackend();
      case IoUringReadBackend.NAME -> ioUring(false);
      case IO_URING_DIRECT -> ioUring(true);
      default -> auto();
    };
  }

  /**
   * Returns {@code choice} when it names a backend ({@code auto}, {@code posix}, {@code io_uring}),
   * without opening anything, so a command line can be checked before the daemon starts.
   *
   * @throws IllegalArgumentException for anything else
   */
  public static String checkChoice(String choice) {
    if (!AUTO.equals(choice)
        && !PosixReadBackend.NAME.equals(choice)
        && !IoUringReadBackend.NAME.equals(choice)
        && !IO_URING_DIRECT.equals(choice)) {
      throw new IllegalArgumentException("backend=" + choice + " must be one of " + CHOICES);
    }
    return choice;
  }

  private static ReadBackend ioUring(boolean direct) {
    try {
      return new IoUringReadBackend(direct);
    } catch (UnsupportedOperationException | UncheckedIOException e) {
      throw new IllegalStateException(
          "backend="
              + (direct ? IO_URING_DIRECT : IoUringReadBackend.NAME)
              + " is unavailable here: "
              + e.getMessage()
              + " (use backend=auto or posix)",
          e);
    }
  }

  private static ReadBackend auto() {
    Throwable cause = IoUring.unavailabilityCause();
    if (cause == null) {
      try {
        return new IoUringReadBackend();
      } catch (RuntimeException e) {
        cause = e; // available, yet the ring failed to start (memlock, fd limit)
      }
    }
    // Once per process: every dataset and restart of a component would repeat it otherwise.
    Level level = FALLBACK_LOGGED.compareAndSet(false, true) ? Level.WARNING : Level.FINE;
    String why = cause.getMessage();
    LOG.log(level, () -> "io_uring unavailable, using posix: " + why);
    return new PosixReadBackend();
  }
}
