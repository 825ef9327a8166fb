package io.sluice.read;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Reads by copying from a read-only mapping of each shard: no system call per read, so a sample the
 * page cache holds costs one copy. For datasets the page cache holds (or a tmpfs): a page that is
 * not resident blocks the reading thread on its fault, and the read-ahead's thread reads inline
 * here ({@link #readAsync} is synchronous), so cold data on a disk is io_uring's job. Never chosen
 * by {@code auto}.
 *
 * <p>A file's mapping lives until the file is closed and no read holds it (it is released by the
 * garbage collector after that), so a read racing with {@link ReadFile#close()} either completes or
 * fails naming the file. A shard truncated while mapped: a read past the new end fails with the
 * same {@link java.io.EOFException} the other backends give, never a crash.
 */
public final class MmapReadBackend implements ReadBackend {
  public static final String NAME = "mmap";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public ReadFile open(Path path) throws IOException {
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = ch.size();
      // An empty file maps to nothing; reads of it fail past its end as anywhere else.
      MemorySegment mapping =
          size == 0
              ? MemorySegment.NULL
              : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, Arena.ofAuto());
      return new MappedFile(path, mapping, size);
    }
  }

  @Override
  public void close() {}

  private static final class MappedFile implements ReadFile {
    private final Path path;
    private final long lengthBytes;
    private volatile MemorySegment mapping; // null once closed

    MappedFile(Path path, MemorySegment mapping, long lengthBytes) {
      this.path = path;
      this.mapping = mapping;
      this.lengthBytes = lengthBytes;
    }

    @Override
    public Path path() {
      return path;
    }

    @Override
    public long lengthBytes() {
      return lengthBytes;
    }

    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      ReadChecks.check(path, offset, dst);
      MemorySegment m = mapping;
      if (m == null) {
        throw ReadChecks.closed(path, offset, null);
      }
      int wanted = dst.remaining();
      if (offset + wanted > lengthBytes) { // the mapping ends where the file did at open
        throw ReadChecks.endOfFile(path, offset, wanted, Math.min(lengthBytes, currentLength()));
      }
      if (wanted == 0) {
        return;
      }
      try {
        MemorySegment.copy(m, offset, MemorySegment.ofBuffer(dst), 0, wanted);
      } catch (InternalError fault) {
        // The JVM turns the SIGBUS of a mapped page past a file's end into this error.
        long now = currentLength();
        if (offset + wanted > now) {
          throw ReadChecks.endOfFile(path, offset, wanted, now);
        }
        throw new IOException(
            "file=" + path + " offset=" + offset + " length=" + wanted + ": mapped read failed",
            fault);
      }
      dst.position(dst.limit());
    }

    private long currentLength() {
      try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
        return ch.size();
      } catch (IOException gone) {
        return 0;
      }
    }

    @Override
    public void close() {
      mapping = null;
    }
  }
}
