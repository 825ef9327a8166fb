package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * A file descriptor from {@code open(2)} with {@code O_RDONLY | O_CLOEXEC} and optionally {@code
 * O_DIRECT}, plus what {@code statx(2)} says about it. Opened read-only by construction: unlike
 * Netty's {@code FileDescriptor.from}, which opens for writing and truncates.
 *
 * <p>Thread-safe; closing is idempotent. The fd number is reused by the kernel once closed, so
 * whoever hands it to a ring must keep it open until the ring is done with it.
 */
public final class NativeFile implements AutoCloseable {
  private static final int STATX_SIZE = 0x200;
  private static final int STATX_DIOALIGN = 0x2000; // Linux 6.1
  private static final int STATX_BYTES = 256;
  private static final int STATX_MASK = 0;
  private static final int STATX_SIZE_OFFSET = 40;
  private static final int STATX_DIO_MEM_ALIGN = 152;
  private static final int STATX_DIO_OFFSET_ALIGN = 156;

  private final Path path;
  private final int fd;
  private final boolean direct;
  private volatile boolean closed;

  private NativeFile(Path path, int fd, boolean direct) {
    this.path = path;
    this.fd = fd;
    this.direct = direct;
  }

  /**
   * Opens {@code path} read-only.
   *
   * @param direct add {@code O_DIRECT}: reads bypass the page cache and must be aligned (see {@link
   *     #stat()})
   * @throws NativeIoException naming the file and the errno (EINVAL with {@code direct}: the file
   *     system does not do direct I/O)
   */
  public static NativeFile open(Path path, boolean direct) throws NativeIoException {
    IoUring.ensurePlatform();
    int flags = LibC.O_RDONLY | LibC.O_CLOEXEC | (direct ? LibC.O_DIRECT : 0);
    try (Arena a = Arena.ofConfined()) {
      MemorySegment callState = LibC.newCallState(a);
      int fd = LibC.open(callState, a.allocateFrom(path.toString()), flags);
      if (fd < 0) {
        throw new NativeIoException(
            "open file=" + path + (direct ? " flags=O_RDONLY|O_DIRECT" : " flags=O_RDONLY"),
            LibC.errno(callState));
      }
      return new NativeFile(path, fd, direct);
    }
  }

  public Path path() {
    return path;
  }

  /** The descriptor; valid until {@link #close()}. */
  public int fd() {
    return fd;
  }

  /** Whether it was opened with {@code O_DIRECT}. */
  public boolean direct() {
    return direct;
  }

  /** Size now, and the direct-I/O alignment the file system reports (0 where it reports none). */
  public Stat stat() throws NativeIoException {
    if (closed) {
      throw new NativeIoException("statx file=" + path + " (closed)", Errno.EBADF);
    }
    try (Arena a = Arena.ofConfined()) {
      MemorySegment callState = LibC.newCallState(a);
      MemorySegment buf = a.allocate(STATX_BYTES, 8);
      long r =
          LibC.syscall(
              callState,
              LibC.SYS_STATX,
              fd,
              a.allocateFrom("").address(),
              LibC.AT_EMPTY_PATH,
              STATX_SIZE | STATX_DIOALIGN,
              buf.address(),
              0);
      if (r < 0) {
        throw new NativeIoException("statx file=" + path, LibC.errno(callState));
      }
      int mask = buf.get(JAVA_INT, STATX_MASK);
      boolean dio = (mask & STATX_DIOALIGN) != 0;
      return new Stat(
          buf.get(JAVA_LONG, STATX_SIZE_OFFSET),
          dio ? buf.get(JAVA_INT, STATX_DIO_MEM_ALIGN) : 0,
          dio ? buf.get(JAVA_INT, STATX_DIO_OFFSET_ALIGN) : 0);
    }
  }

  /**
   * What {@code statx} reports.
   *
   * @param sizeBytes the file's current size
   * @param dioMemAlign required buffer address alignment for {@code O_DIRECT}; 0 unknown
   * @param dioOffsetAlign required file offset and length alignment for {@code O_DIRECT}; 0 unknown
   *     (or direct I/O unsupported)
   */
  public record Stat(long sizeBytes, int dioMemAlign, int dioOffsetAlign) {}

  @Override
  public void close() throws NativeIoException {
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
    }
    try (Arena a = Arena.ofConfined()) {
      MemorySegment callState = LibC.newCallState(a);
      if (LibC.close(callState, fd) != 0) {
        throw new NativeIoException("close file=" + path, LibC.errno(callState));
      }
    }
  }

  @Override
  public String toString() {
    return "NativeFile[" + path + " fd=" + fd + (direct ? " O_DIRECT" : "") + "]";
  }
}
