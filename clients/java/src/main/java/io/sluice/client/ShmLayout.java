package io.sluice.client;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The layout of a {@code shm} delivery region: one file per stream under the daemon's shared-memory
 * folder, a header page and then a ring of Arrow IPC messages. Both sides check {@link #MAGIC} and
 * {@link #VERSION} before trusting anything else in it.
 *
 * <pre>
 * offset  size  field
 *      0     8  magic "SLUICESH"
 *      8     4  layout version (1)
 *     12     4  header bytes (4096): where the message area starts
 *     16     8  capacity: bytes of the message area
 *     64     8  released: written by the client, every batch with seq below it is free to reuse
 *     72     8  detached: written by a cuda client once it closed its CUDA IPC mapping of the
 *                stream's device pool (1), so the daemon may free the pool
 * </pre>
 *
 * Each batch's app_metadata names its message by {@link ShmSlot}: absolute offset and length in the
 * file and its sequence number. The message is an encapsulated Arrow IPC record batch message
 * (continuation marker, metadata length, flatbuffer metadata, body), readable in place with no copy
 * by pyarrow's {@code ipc.read_message} and by {@link ShmImporter}.
 */
public final class ShmLayout {
  /** "SLUICESH" read as a little-endian long. */
  public static final long MAGIC = 0x4853454349554c53L;

  public static final int VERSION = 1;
  public static final int HEADER_BYTES = 4096;
  public static final long MAGIC_OFFSET = 0;
  public static final long VERSION_OFFSET = 8;
  public static final long HEADER_BYTES_OFFSET = 12;
  public static final long CAPACITY_OFFSET = 16;
  public static final long RELEASED_OFFSET = 64;
  public static final long DETACHED_OFFSET = 72;

  /** Messages start at multiples of this, so every Arrow buffer in them stays 64-byte aligned. */
  public static final int MESSAGE_ALIGNMENT = 64;

  private static final ValueLayout.OfLong LONG =
      ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfInt INT =
      ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final VarHandle RELEASED = LONG.varHandle();

  private ShmLayout() {}

  /** Writes a fresh header for a region with {@code capacity} bytes of messages. */
  public static void writeHeader(MemorySegment region, long capacity) {
    region.set(LONG, MAGIC_OFFSET, MAGIC);
    region.set(INT, VERSION_OFFSET, VERSION);
    region.set(INT, HEADER_BYTES_OFFSET, HEADER_BYTES);
    region.set(LONG, CAPACITY_OFFSET, capacity);
    RELEASED.setRelease(region, RELEASED_OFFSET, 0L);
    RELEASED.setRelease(region, DETACHED_OFFSET, 0L);
  }

  /**
   * Maps the daemon's file at {@code path} read-write in {@code arena} (a client moves its release
   * and detach marks there), at most {@code maxBytes} of it.
   */
  static MemorySegment mapShared(String path, long maxBytes, Arena arena) throws IOException {
    try (FileChannel ch =
        FileChannel.open(Path.of(path), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      return ch.map(FileChannel.MapMode.READ_WRITE, 0, Math.min(ch.size(), maxBytes), arena);
    }
  }

  /**
   * Checks a mapped region's header and returns its capacity; a region from another layout version,
   * or one that is not a Sluice region, is refused naming the path.
   */
  public static long checkHeader(MemorySegment region, String path) {
    if (region.byteSize() < HEADER_BYTES) {
      throw new ProtocolException(
          "shm",
          "shm region " + path + " is " + region.byteSize() + " bytes, shorter than its header");
    }
    long magic = region.get(LONG, MAGIC_OFFSET);
    if (magic != MAGIC) {
      throw new ProtocolException(
          "shm",
          "shm region " + path + " is not a Sluice region (magic " + Long.toHexString(magic) + ")");
    }
    int version = region.get(INT, VERSION_OFFSET);
    if (version != VERSION) {
      throw new ProtocolException(
          "shm",
          "shm region "
              + path
              + " has layout version "
              + version
              + ", this client reads version "
              + VERSION);
    }
    long capacity = region.get(LONG, CAPACITY_OFFSET);
    int header = region.get(INT, HEADER_BYTES_OFFSET);
    if (header != HEADER_BYTES || capacity < 0 || header + capacity > region.byteSize()) {
      throw new ProtocolException(
          "shm",
          "shm region "
              + path
              + " has a bad header (header bytes "
              + header
              + ", capacity "
              + capacity
              + ", file "
              + region.byteSize()
              + " bytes)");
    }
    return capacity;
  }

  /** The client's release mark: batches with a lower seq may be overwritten. */
  public static long released(MemorySegment region) {
    return (long) RELEASED.getAcquire(region, RELEASED_OFFSET);
  }

  /** Whether a cuda client said it closed its mapping of the stream's device pool. */
  public static boolean detached(MemorySegment region) {
    return (long) RELEASED.getAcquire(region, DETACHED_OFFSET) != 0;
  }

  /** Says this client holds no mapping of the stream's device pool (client side, cuda). */
  public static void detach(MemorySegment region) {
    RELEASED.setRelease(region, DETACHED_OFFSET, 1L);
  }

  /** Marks every batch up to and including {@code seq} as released (client side). */
  public static void release(MemorySegment region, long seq) {
    RELEASED.setRelease(region, RELEASED_OFFSET, seq + 1);
  }
}
