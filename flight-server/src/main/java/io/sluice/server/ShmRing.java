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
  private final Path file;
  private final Arena arena;
  private final MemorySegment region;
  private final BufferAllocator reservation;
  private final SlotRing slots;

  private ShmRing(
      Path file, Arena arena, MemorySegment region, BufferAllocator reservation, long capacity) {
    this.file = file;
    this.arena = arena;
    this.region = region;
    this.reservation = reservation;
    this.slots = new SlotRing(region, ShmLayout.HEADER_BYTES, ShmLayout.HEADER_BYTES + capacity);
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
      MemorySegment region = mapNewFile(file, ShmLayout.HEADER_BYTES + capacity, arena);
      ShmLayout.writeHeader(region, capacity);
      return new ShmRing(file, arena, region, reservation, capacity);
    } catch (IOException | RuntimeException e) {
      arena.close();
      Files.deleteIfExists(file);
      reservation.close();
      throw e;
    }
  }

  /**
   * Creates {@code file} (mode 0600, failing if it exists) of {@code size} bytes and maps it
   * read-write in {@code arena}; its pages stay unbacked until written.
   */
  static MemorySegment mapNewFile(Path file, long size, Arena arena) throws IOException {
    Files.createFile(
        file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ch.truncate(size);
      ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
      return ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
    }
  }

  String path() {
    return file.toString();
  }

  long capacity() {
    return slots.capacity();
  }

  MemorySegment region() {
    return region;
  }

  /** The sequence number the next placed message gets. */
  long nextSeq() {
    return slots.nextSeq();
  }

  /**
   * Room for a message of {@code bytes}: its absolute offset in the region, waiting for the client
   * to release older messages as long as needed; -1 when {@code stop} turns true first.
   */
  long place(long bytes, BooleanSupplier stop) {
    return slots.place(bytes, stop);
  }

  /** Messages placed and not yet released by the client. */
  int unreleased() {
    return slots.unreleased();
  }

  /**
   * Waits until the client has released every message placed (the stream's end); false when {@code
   * stop} turns true first.
   */
  boolean awaitAllReleased(BooleanSupplier stop) {
    return slots.awaitAllReleased(stop);
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
