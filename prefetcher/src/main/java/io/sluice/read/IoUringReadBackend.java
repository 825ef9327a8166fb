package io.sluice.read;

import io.sluice.nativeio.Errno;
import io.sluice.nativeio.IoUring;
import io.sluice.nativeio.NativeFile;
import io.sluice.nativeio.NativeIoException;
import io.sluice.nativeio.RingReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Reads through io_uring: every file and every calling thread shares one ring and its ring thread
 * ({@link RingReader}), which keeps up to {@code queueDepth} reads in flight.
 *
 * <p>{@link ReadFile#readFully} queues one read and parks the caller until it completes (on a
 * virtual thread that frees the carrier, unlike a {@code FileChannel} read, which pins it); {@link
 * #readAsync} returns at once, so one thread can keep the whole queue depth busy.
 *
 * <p>With {@code direct}, files are opened with {@code O_DIRECT} (no page cache): a read whose
 * offset and length are multiples of the file system's direct-I/O alignment ({@code statx}
 * DIOALIGN, else 4096) and whose buffer address is aligned goes straight into the caller's buffer;
 * any other read goes through a bounce buffer covering the aligned range around it (up to two
 * alignment units more read, one allocation and one copy). Files on a file system that refuses
 * {@code O_DIRECT} (EINVAL at open: tmpfs before Linux 6.6, procfs) are read through the page
 * cache, logged once per backend. Heap buffers always go through a bounce buffer.
 *
 * <p>Futures from {@link #readAsync} complete on the ring thread: attach short dependents only.
 */
public final class IoUringReadBackend implements ReadBackend {
  public static final String NAME = "io_uring";
  public static final int DEFAULT_QUEUE_DEPTH = 128;

  /** O_DIRECT alignment when the file system reports none (statx DIOALIGN is Linux 6.1+). */
  static final int FALLBACK_DIRECT_ALIGN = 4096;

  private static final Logger LOG = Logger.getLogger(IoUringReadBackend.class.getName());
  private static final AtomicInteger RINGS = new AtomicInteger();

  private final boolean direct;
  private final RingReader ring;
  private final AtomicBoolean bufferedFallbackLogged = new AtomicBoolean();

  /** Buffered reads, {@value #DEFAULT_QUEUE_DEPTH} in flight. */
  public IoUringReadBackend() {
    this(false);
  }

  public IoUringReadBackend(boolean direct) {
    this(direct, DEFAULT_QUEUE_DEPTH);
  }

  /**
   * @param direct open files with {@code O_DIRECT}
   * @param queueDepth reads in flight at most, 1 to {@value RingReader#MAX_QUEUE_DEPTH}
   * @throws UnsupportedOperationException when io_uring is unavailable, its cause chained
   * @throws UncheckedIOException when the ring cannot be set up
   */
  public IoUringReadBackend(boolean direct, int queueDepth) {
    IoUring.ensureAvailability();
    this.direct = direct;
    try {
      this.ring = RingReader.start("sluice-io_uring-" + RINGS.getAndIncrement(), queueDepth);
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage(), e);
    }
  }

  @Override
  public boolean prefersBatches() {
    return true;
  }

  @Override
  public String name() {
    return direct ? ReadBackends.IO_URING_DIRECT : NAME;
  }

  /** Whether files are opened with {@code O_DIRECT} (where the file system allows). */
  public boolean direct() {
    return direct;
  }

  public int queueDepth() {
    return ring.queueDepth();
  }

  @Override
  public ReadFile open(Path path) throws IOException {
    NativeFile nf = openNative(path);
    try {
      NativeFile.Stat st = nf.stat();
      int offsetAlign = 1;
      int memAlign = 1;
      if (nf.direct()) {
        offsetAlign = st.dioOffsetAlign() > 0 ? st.dioOffsetAlign() : FALLBACK_DIRECT_ALIGN;
        memAlign = st.dioMemAlign() > 0 ? st.dioMemAlign() : FALLBACK_DIRECT_ALIGN;
      }
      return new UringFile(this, path, nf, st.sizeBytes(), offsetAlign, memAlign);
    } catch (IOException | RuntimeException e) {
      try {
        nf.close();
      } catch (IOException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  private NativeFile openNative(Path path) throws IOException {
    try {
      if (direct) {
        try {
          return NativeFile.open(path, true);
        } catch (NativeIoException e) {
          if (e.errno() != Errno.EINVAL) {
            throw e;
          }
          logBufferedFallback(path);
        }
      }
      return NativeFile.open(path, false);
    } catch (NativeIoException e) {
      // The same types FileChannel.open throws, so callers need not know the backend.
      throw switch (e.errno()) {
        case Errno.ENOENT ->
            withCause(new NoSuchFileException(path.toString(), null, e.getMessage()), e);
        case Errno.EACCES, Errno.EPERM ->
            withCause(new AccessDeniedException(path.toString(), null, e.getMessage()), e);
        default -> e;
      };
    }
  }

  private static IOException withCause(IOException e, Throwable cause) {
    e.initCause(cause);
    return e;
  }

  private void logBufferedFallback(Path path) {
    Level level = bufferedFallbackLogged.compareAndSet(false, true) ? Level.INFO : Level.FINE;
    LOG.log(
        level,
        () ->
            "O_DIRECT refused (EINVAL) for file="
                + path
                + ": its file system does not do direct I/O; reading it through the page cache"
                + (level == Level.INFO ? " (further files like it are logged at FINE)" : ""));
  }

  @Override
  public CompletableFuture<Void> readAsync(ReadFile file, long offset, ByteBuffer dst) {
    if (!(file instanceof UringFile f) || f.backend != this) {
      return CompletableFuture.failedFuture(
          new IllegalArgumentException(
              "file=" + file.path() + " was not opened by this io_uring backend"));
    }
    Read read;
    try {
      read = f.begin(offset, dst);
    } catch (IOException | RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
    if (read == null) {
      return CompletableFuture.completedFuture(null);
    }
    CompletableFuture<Void> result = new CompletableFuture<>();
    read.submit()
        .whenComplete(
            (done, error) -> {
              if (error != null) {
                read.abandon();
                result.completeExceptionally(unwrap(error));
                return;
              }
              try {
                read.finish(done);
                result.complete(null);
              } catch (Throwable t) {
                result.completeExceptionally(t);
              }
            });
    return result;
  }

  /** Stops the ring: queued reads fail, reads in flight finish first. Files stay open. */
  @Override
  public void close() {
    ring.close();
  }

  @Override
  public String toString() {
    return "IoUringReadBackend[" + (direct ? "O_DIRECT " : "") + ring + "]";
  }

  private static Throwable unwrap(Throwable t) {
    return t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
  }

  /** One open file: an fd held open while any read on it is in flight. */
  static final class UringFile implements ReadFile {
    final IoUringReadBackend backend;
    private final Path path;
    private final String label;
    private final NativeFile nf;
    private final long lengthBytes;
    private final int offsetAlign; // 1 unless O_DIRECT
    private final int memAlign;
    // 1 for the open file plus 1 per read in flight; the fd closes at 0, so a read never runs on
    // a closed (and possibly reused) fd number.
    private final AtomicInteger refs = new AtomicInteger(1);
    private final AtomicBoolean closed = new AtomicBoolean();

    UringFile(
        IoUringReadBackend backend,
        Path path,
        NativeFile nf,
        long lengthBytes,
        int offsetAlign,
        int memAlign) {
      this.backend = backend;
      this.path = path;
      this.label = path.toString();
      this.nf = nf;
      this.lengthBytes = lengthBytes;
      this.offsetAlign = offsetAlign;
      this.memAlign = memAlign;
    }

    @Override
    public Path path() {
      return path;
    }

    @Override
    public long lengthBytes() {
      return lengthBytes;
    }

    /** Whether reads bypass the page cache (false where the file system refused O_DIRECT). */
    boolean directIo() {
      return nf.direct();
    }

    /** Offset and length alignment for in-place O_DIRECT reads; 1 when buffered. */
    int offsetAlign() {
      return offsetAlign;
    }

    int memAlign() {
      return memAlign;
    }

    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      if (backend.ring.isRingThread()) {
        throw new IllegalStateException(
            "file="
                + path
                + " offset="
                + offset
                + ": readFully on the io_uring ring thread would wait for itself; use readAsync");
      }
      Read read = begin(offset, dst);
      if (read == null) {
        return;
      }
      int done;
      try {
        done = read.submit().join(); // uninterruptible: the buffer is the kernel's until then
      } catch (CompletionException e) {
        read.abandon();
        Throwable cause = unwrap(e);
        if (cause instanceof IOException io) {
          throw io;
        }
        if (cause instanceof RuntimeException re) {
          throw re;
        }
        if (cause instanceof Error err) {
          throw err;
        }
        throw new IOException(cause);
      }
      read.finish(done); // copies out of a bounce buffer here, on the caller's thread
    }

    /** Checks, pins the fd and plans the read; null for an empty one. */
    Read begin(long offset, ByteBuffer dst) throws IOException {
      ReadChecks.check(path, offset, dst);
      if (closed.get()) {
        throw ReadChecks.closed(path, offset, null);
      }
      int length = dst.remaining();
      if (length == 0) {
        return null;
      }
      acquire(offset);
      try {
        return plan(offset, dst, length);
      } catch (RuntimeException e) {
        release();
        throw e;
      }
    }

    private Read plan(long offset, ByteBuffer dst, int length) {
      if (dst.isDirect()) {
        MemorySegment target = MemorySegment.ofBuffer(dst);
        if (offset % offsetAlign == 0
            && length % offsetAlign == 0
            && target.address() % memAlign == 0) {
          return new Read(this, offset, dst, length, target, offset, 0, null);
        }
      }
      long start = offset - offset % offsetAlign;
      long end = Math.ceilDiv(offset + length, offsetAlign) * offsetAlign;
      if (end - start > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(
            "file="
                + path
                + " offset="
                + offset
                + " length="
                + length
                + ": too long for an unaligned O_DIRECT read");
      }
      Arena bounce = Arena.ofShared();
      MemorySegment target = bounce.allocate(end - start, Math.max(memAlign, Long.BYTES));
      return new Read(this, offset, dst, length, target, start, (int) (offset - start), bounce);
    }

    private void acquire(long offset) throws IOException {
      int r;
      do {
        r = refs.get();
        if (r == 0) {
          throw ReadChecks.closed(path, offset, null);
        }
      } while (!refs.compareAndSet(r, r + 1));
    }

    private void release() {
      if (refs.decrementAndGet() == 0) {
        try {
          nf.close();
        } catch (IOException e) {
          LOG.log(Level.WARNING, "closing file=" + path + " failed", e);
        }
      }
    }

    long currentLengthBytes() {
      try {
        return nf.stat().sizeBytes();
      } catch (IOException e) {
        return -1;
      }
    }

    @Override
    public void close() {
      if (closed.compareAndSet(false, true)) {
        release();
      }
    }

    @Override
    public String toString() {
      return "UringFile[" + nf + "]";
    }
  }

  /** A read between submission and completion. */
  static final class Read {
    private final UringFile file;
    private final long offset;
    private final ByteBuffer dst;
    private final int length;
    private final MemorySegment target; // the caller's buffer, or a bounce buffer
    private final long readOffset;
    private final int skip; // bytes of the bounce buffer before the requested ones
    private final Arena bounce;

    Read(
        UringFile file,
        long offset,
        ByteBuffer dst,
        int length,
        MemorySegment target,
        long readOffset,
        int skip,
        Arena bounce) {
      this.file = file;
      this.offset = offset;
      this.dst = dst;
      this.length = length;
      this.target = target;
      this.readOffset = readOffset;
      this.skip = skip;
      this.bounce = bounce;
    }

    CompletableFuture<Integer> submit() {
      return file.backend.ring.read(file.nf.fd(), target, readOffset, file.offsetAlign, file.label);
    }

    /** Checks for end of file, copies out of the bounce buffer, releases everything. */
    void finish(int done) throws IOException {
      try {
        if (done < skip + length) {
          throw ReadChecks.endOfFile(file.path, offset, length, file.currentLengthBytes());
        }
        if (bounce != null) {
          MemorySegment.copy(target, skip, MemorySegment.ofBuffer(dst), 0, length);
        }
        dst.position(dst.limit());
      } finally {
        abandon();
      }
    }

    void abandon() {
      if (bounce != null) {
        bounce.close();
      }
      file.release();
    }
  }
}
