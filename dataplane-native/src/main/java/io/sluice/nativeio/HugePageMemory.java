package io.sluice.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Anonymous memory mapped from the kernel and asked to be backed by transparent huge pages ({@code
 * madvise(MADV_HUGEPAGE)}), for the sample cache's slabs. Samples are read at random over
 * gigabytes: on 4 KiB pages each one costs its own TLB miss, on 2 MiB pages almost none (an
 * all-cached shm stream went 16% faster with huge pages). Unlike an {@link Arena} allocation the
 * pages are not zeroed up front: a slab takes resident memory only as the cache fills it.
 *
 * <p>Available on Linux x86_64 unless {@value #DISABLE_PROPERTY} is set; where it is not, callers
 * allocate from an {@link Arena} as before. Huge pages themselves are a hint: with transparent huge
 * pages set to {@code never} ({@link #transparentHugePages()}) the memory is plain pages.
 */
public final class HugePageMemory {
  /** Set to {@code true} to allocate slabs from an {@link Arena} instead. */
  public static final String DISABLE_PROPERTY = "sluice.huge_pages.disable";

  /** The huge page size {@link #map} aligns to: what {@link #release} frees as a unit. */
  public static final long HUGE_PAGE_BYTES = 2L << 20;

  private static final Path THP_ENABLED = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
  private static final Logger LOG = Logger.getLogger(HugePageMemory.class.getName());
  private static final Throwable UNAVAILABILITY_CAUSE;

  static {
    String refusal =
        Probes.refusal(
            "huge-page memory",
            System.getProperty("os.name"),
            DISABLE_PROPERTY,
            System.getProperty(DISABLE_PROPERTY));
    Throwable cause = refusal == null ? null : new UnsupportedOperationException(refusal);
    if (cause == null) {
      cause = IoUring.platformCause(System.getProperty("os.name"), System.getProperty("os.arch"));
    }
    UNAVAILABILITY_CAUSE = cause;
  }

  private HugePageMemory() {}

  public static boolean isAvailable() {
    return UNAVAILABILITY_CAUSE == null;
  }

  /** Why {@link #map} is unavailable, or null when it is available. */
  public static Throwable unavailabilityCause() {
    return UNAVAILABILITY_CAUSE;
  }

  /**
   * @throws UnsupportedOperationException with {@link #unavailabilityCause()} chained, when
   *     unavailable
   */
  public static void ensureAvailability() {
    Probes.ensure("huge-page memory", UNAVAILABILITY_CAUSE);
  }

  /**
   * The kernel's transparent huge page mode ({@code always}, {@code madvise} or {@code never}), or
   * {@code unknown} when it cannot be read. {@link #map} gets huge pages under the first two.
   */
  public static String transparentHugePages() {
    try {
      String line = Files.readString(THP_ENABLED);
      int open = line.indexOf('[');
      int close = line.indexOf(']', open + 1);
      return open >= 0 && close > open ? line.substring(open + 1, close) : "unknown";
    } catch (IOException | RuntimeException e) {
      return "unknown";
    }
  }

  /**
   * {@code lengthBytes} of zeroed memory, 2 MiB aligned, unmapped when {@code arena} closes.
   *
   * @throws UnsupportedOperationException when unavailable
   * @throws OutOfMemoryError when the kernel refuses the mapping
   */
  public static MemorySegment map(long lengthBytes, Arena arena) {
    ensureAvailability();
    if (lengthBytes <= 0) {
      throw new IllegalArgumentException("lengthBytes=" + lengthBytes + " must be > 0");
    }
    // One huge page more than asked, so that an aligned start lies inside the mapping: the kernel
    // backs only aligned 2 MiB ranges with huge pages. The slack is never touched.
    long mapped = lengthBytes + HUGE_PAGE_BYTES;
    long base;
    long start;
    try (Arena call = Arena.ofConfined()) {
      MemorySegment state = LibC.newCallState(call);
      base =
          LibC.mmap(
              state,
              mapped,
              LibC.PROT_READ | LibC.PROT_WRITE,
              LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS,
              -1,
              0);
      if (base == -1L) {
        throw new OutOfMemoryError(
            "mmap of "
                + mapped
                + " bytes of anonymous memory failed: "
                + Errno.describe(LibC.errno(state)));
      }
      start = (base + HUGE_PAGE_BYTES - 1) & -HUGE_PAGE_BYTES;
      if (LibC.madvise(state, start, lengthBytes, LibC.MADV_HUGEPAGE) != 0) {
        // Old kernels, or THP compiled out: plain pages still work.
        int errno = LibC.errno(state);
        LOG.log(
            Level.FINE,
            () -> "madvise(MADV_HUGEPAGE) refused, plain pages: " + Errno.describe(errno));
      }
    }
    return LibC.unmappedWith(arena, start, lengthBytes, base, mapped);
  }

  /**
   * Gives the pages of {@code segment}, part of a {@link #map} mapping, back to the kernel ({@code
   * madvise(MADV_DONTNEED)}): its resident memory is freed at once, the range stays mapped, and
   * touched again it reads zeros. The sample cache does this to the slabs it drains when its budget
   * shrinks.
   *
   * @throws UnsupportedOperationException when unavailable
   * @throws IllegalStateException naming the range and errno when the kernel refuses
   */
  public static void release(MemorySegment segment) {
    ensureAvailability();
    int errno = advise(segment, LibC.MADV_DONTNEED);
    if (errno != 0) {
      throw new IllegalStateException(
          "madvise(MADV_DONTNEED) of "
              + segment.byteSize()
              + " bytes at 0x"
              + Long.toHexString(segment.address())
              + " failed: "
              + Errno.describe(errno));
    }
  }

  /**
   * Faults in the pages of {@code segment}, part of a {@link #map} mapping, writable, without
   * writing to them ({@code madvise(MADV_POPULATE_WRITE)}, Linux 5.14 and later): the cost of
   * backing new memory (zeroing it, and compacting for huge pages) is paid on the calling thread
   * instead of by whichever thread first writes there. Returns false, doing nothing, where the
   * kernel does not know the advice.
   *
   * @throws UnsupportedOperationException when unavailable
   */
  public static boolean populate(MemorySegment segment) {
    ensureAvailability();
    return advise(segment, LibC.MADV_POPULATE_WRITE) == 0;
  }

  /** {@code madvise(advice)} on {@code segment}'s range: 0, or the errno it failed with. */
  private static int advise(MemorySegment segment, int advice) {
    try (Arena call = Arena.ofConfined()) {
      MemorySegment state = LibC.newCallState(call);
      return LibC.madvise(state, segment.address(), segment.byteSize(), advice) == 0
          ? 0
          : LibC.errno(state);
    }
  }
}
