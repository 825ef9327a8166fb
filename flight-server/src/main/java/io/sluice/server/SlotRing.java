package io.sluice.server;

import io.sluice.client.ShmLayout;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * Placement of one stream's batches in a ring of offsets {@code [start, end)} that a client
 * releases in order: batches are placed one after another (wrapping to the start) and freed once
 * the client's release mark, in the {@link ShmLayout} header of {@code header}, passes their
 * sequence number, so a slot is never reused while the client may still read it. The bytes may lie
 * anywhere (the shm region itself, or a pool of device memory whose release mark lives in a host
 * control file). Owned by the stream's thread.
 */
final class SlotRing {
  private static final long MAX_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(2);

  private final MemorySegment header;
  private final long start;
  private final long end;
  private final ArrayDeque<long[]> live = new ArrayDeque<>(); // {seq, offset, end}, oldest first
  private long nextSeq;

  SlotRing(MemorySegment header, long start, long end) {
    if (start < 0 || end <= start) {
      throw new IllegalArgumentException("ring [" + start + ", " + end + ") is empty");
    }
    this.header = header;
    this.start = start;
    this.end = end;
  }

  long capacity() {
    return end - start;
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
  static boolean awaitClient(BooleanSupplier done, BooleanSupplier stop) {
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
    long released = ShmLayout.released(header);
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
}
