package io.sluice.server;

import io.sluice.client.ShmLayout;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.OutOfMemoryException;

/**
 * One stream's shared-memory region: a file mapped by the daemon and by the client, holding batch
 * messages in a ring. Messages are placed in order and freed in order once the client's release
 * mark (in the header, see {@link ShmLayout}) passes them, so a slot is never overwritten while the
 * client may still read it. When the stream ends the file is removed: the client's mapping stays
 * valid until it unmaps, and no other stream ever gets those pages. Owned by the stream's thread.
 */
final class ShmRing implements AutoCloseable {
  private static final long MAX_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(2);

  private final Path file;
  private final Arena arena;
  private final MemorySegment region;
  private final BufferAllocator reservation;
  private final long start;
  private final long end;
  private final ArrayDeque<long[]> live = new ArrayDeque<>(); // {seq, offset, end}, oldest first
  private long nextSeq;

  private ShmRing(
      Path file, Arena arena, MemorySegment region, BufferAllocator reservation, long capacity) {
    this.file = file;
    this.arena = arena;
    this.region = region;
    this.reservation = reservation;
    this.start = ShmLayout.HEADER_BYTES;
    this.end = ShmLayout.HEADER_BYTES + capacity;
  }

  /**
   * Creates the region file (mode 0600) with {@code capacity} bytes of messages, reserving them
   * from {@code budget}; null when the budget cannot hold them.
   */
  static ShmRing create(Path file, long capacity, BufferAllocator budget) throws IOException {
    BufferAllocator reservation;
    try {
      reservation =
          budget.newChildAllocator(
              "shm-" + file.getFileName(), capacity + ShmLayout.HEADER_BYTES, Long.MAX_VALUE);
    } catch (OutOfMemoryException e) {
      return null;
    }
    Arena arena = Arena.ofShared();
    try {
      Files.createFile(
          file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
      MemorySegment region;
      try (FileChannel ch =
          FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
        long size = ShmLayout.HEADER_BYTES + capacity;
        ch.truncate(size);
        ch.write(java.nio.ByteBuffer.allocate(1), size - 1); // size the file; pages stay unbacked
        region = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
      }
      ShmLayout.writeHeader(region, capacity);
      return new ShmRing(file, arena, region, reservation, capacity);
    } catch (IOException | RuntimeException e) {
      arena.close();
      Files.deleteIfExists(file);
      reservation.close();
      throw e;
    }
  }

  String path() {
    return file.toString();
  }

  long capacity() {
    return end - start;
  }

  MemorySegment region() {
    return region;
  }

  /** The sequence number the next placed message gets. */
  long nextSeq() {
    return nextSeq;
  }

  /**
   * Room for a message of {@code bytes}: its absolute offset in the region, waiting for the client
   * to release older messages as long as needed; -1 when {@code stop} turns true first.
   */
  long place(long bytes, BooleanSupplier stop) {
    long size = align(bytes);
    if (size > end - start) {
      throw new IllegalArgumentException(
          "message of " + bytes + " bytes does not fit a ring of " + (end - start));
    }
    long[] at = {-1};
    if (!awaitClient(
        () -> {
          reclaim();
          at[0] = fit(size);
          return at[0] >= 0;
        },
        stop)) {
      return -1;
    }
    live.addLast(new long[] {nextSeq, at[0], at[0] + size});
    nextSeq++;
    return at[0];
  }

  /** Messages placed and not yet released by the client. */
  int unreleased() {
    reclaim();
    return live.size();
  }

  /**
   * Waits until the client has released every message placed (the stream's end); false when {@code
   * stop} turns true first.
   */
  boolean awaitAllReleased(BooleanSupplier stop) {
    return awaitClient(() -> unreleased() == 0, stop);
  }

  /**
   * Polls {@code done}, parking between looks (backing off to {@value #MAX_PARK_NANOS} ns), until
   * it holds (true) or {@code stop} does (false): the client says what it released only through the
   * region, so there is nothing to be woken by.
   */
  private static boolean awaitClient(BooleanSupplier done, BooleanSupplier stop) {
    long park = 20_000;
    while (!done.getAsBoolean()) {
      if (stop.getAsBoolean()) {
        return false;
      }
      LockSupport.parkNanos(park);
      park = Math.min(park * 2, MAX_PARK_NANOS);
    }
    return true;
  }

  private void reclaim() {
    long released = ShmLayout.released(region);
    while (!live.isEmpty() && live.peekFirst()[0] < released) {
      live.pollFirst();
    }
  }

  /** Where {@code size} bytes fit after the newest message (or wrapped to the start), or -1. */
  private long fit(long size) {
    if (live.isEmpty()) {
      return start;
    }
    long oldest = live.peekFirst()[1];
    long tail = live.peekLast()[2];
    if (tail > oldest) { // live messages lie in [oldest, tail)
      if (tail + size <= end) {
        return tail;
      }
      return start + size <= oldest ? start : -1;
    }
    return tail + size <= oldest ? tail : -1; // wrapped: free space is [tail, oldest)
  }

  private static long align(long bytes) {
    int a = ShmLayout.MESSAGE_ALIGNMENT;
    return (bytes + a - 1) / a * a;
  }

  @Override
  public void close() {
    try {
      arena.close();
    } finally {
      try {
        Files.deleteIfExists(file);
      } catch (IOException ignored) {
        // the daemon's folder is removed at exit anyway
      } finally {
        reservation.close();
      }
    }
  }
}
