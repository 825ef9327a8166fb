package io.sluice.client;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.ReadableByteChannel;
import java.util.HashMap;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.ForeignAllocation;
import org.apache.arrow.vector.VectorLoader;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ReadChannel;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.ipc.message.MessageMetadataResult;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Reads {@code shm} batches in place: maps each region the stream names once, wraps the batch's
 * body as Arrow buffers over the mapping (no copy), and tells the daemon when a batch is released.
 * Owned by one stream's thread.
 */
public final class ShmImporter implements AutoCloseable {
  private final BufferAllocator allocator;
  private final VectorSchemaRoot root;
  private final VectorLoader loader;
  private final Map<String, Region> regions = new HashMap<>();
  private Region current;
  private long currentSeq = -1;

  private record Region(Arena arena, MemorySegment segment, long capacity) {}

  public ShmImporter(Schema schema, BufferAllocator allocator) {
    this.allocator = allocator;
    this.root = VectorSchemaRoot.create(schema, allocator);
    this.loader = new VectorLoader(root);
  }

  /**
   * Releases the batch imported before (if any), then loads the batch {@code slot} names into
   * {@link #root()}; its buffers point into the shared mapping until the next call.
   */
  public VectorSchemaRoot load(ShmSlot slot) {
    releaseCurrent();
    Region region = regions.computeIfAbsent(slot.region(), ShmImporter::map);
    if (slot.offset() + slot.length() > ShmLayout.HEADER_BYTES + region.capacity()) {
      throw new ProtocolException(
          "shm",
          "shm batch at offset "
              + slot.offset()
              + " length "
              + slot.length()
              + " lies outside region "
              + slot.region()
              + " ("
              + region.capacity()
              + " bytes of messages)");
    }
    MemorySegment message = region.segment().asSlice(slot.offset(), slot.length());
    try {
      MessageMetadataResult meta =
          MessageSerializer.readMessage(new ReadChannel(new SegmentChannel(message)));
      if (meta == null) {
        throw new ProtocolException("shm", "shm batch seq " + slot.seq() + " holds no message");
      }
      long bodyStart = meta.getMessageLength() + prefixBytes(message);
      long bodyLength = meta.getMessageBodyLength();
      if (bodyStart + bodyLength > slot.length()) {
        throw new ProtocolException(
            "shm",
            "shm batch seq "
                + slot.seq()
                + ": body of "
                + bodyLength
                + " bytes does not fit its slot of "
                + slot.length());
      }
      MemorySegment body = message.asSlice(bodyStart, bodyLength);
      ArrowBuf bodyBuf = allocator.wrapForeignAllocation(new Mapped(body));
      // Takes over bodyBuf's reference: the batch, then the loaded vectors, hold slices of it.
      try (ArrowRecordBatch batch = MessageSerializer.deserializeRecordBatch(meta, bodyBuf)) {
        loader.load(batch);
      }
    } catch (IOException e) {
      throw new ProtocolException(
          "shm", "shm batch seq " + slot.seq() + " in " + slot.region() + " is unreadable", e);
    }
    current = region;
    currentSeq = slot.seq();
    return root;
  }

  /** The batch last loaded. */
  public VectorSchemaRoot root() {
    return root;
  }

  /** Lets the daemon reuse the current batch's slot; the root is cleared first. */
  public void releaseCurrent() {
    if (current != null) {
      root.clear();
      ShmLayout.release(current.segment(), currentSeq);
      current = null;
    }
  }

  @Override
  public void close() {
    releaseCurrent();
    root.close();
    for (Region r : regions.values()) {
      r.arena().close();
    }
    regions.clear();
  }

  /** Bytes before the flatbuffer: the continuation marker (when present) and the length. */
  private static long prefixBytes(MemorySegment message) {
    int first = message.get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, 0);
    return first == -1 ? 8 : 4;
  }

  private static Region map(String path) {
    Arena arena = Arena.ofShared();
    try {
      MemorySegment segment = ShmLayout.mapShared(path, Long.MAX_VALUE, arena);
      long capacity = ShmLayout.checkHeader(segment, path);
      return new Region(arena, segment, capacity);
    } catch (IOException e) {
      arena.close();
      throw new ProtocolException("shm", "cannot map shm region " + path + ": " + e, e);
    } catch (RuntimeException e) {
      arena.close();
      throw e;
    }
  }

  /** A message body owned by the mapping: Arrow accounts for it and frees nothing. */
  private static final class Mapped extends ForeignAllocation {
    Mapped(MemorySegment body) {
      super(body.byteSize(), body.address());
    }

    @Override
    protected void release0() {}
  }

  /** Reads a segment from its start, for Arrow's message reader. */
  private static final class SegmentChannel implements ReadableByteChannel {
    private final MemorySegment segment;
    private long position;

    SegmentChannel(MemorySegment segment) {
      this.segment = segment;
    }

    @Override
    public int read(java.nio.ByteBuffer dst) {
      long left = segment.byteSize() - position;
      if (left <= 0) {
        return -1;
      }
      int n = (int) Math.min(left, dst.remaining());
      MemorySegment.copy(segment, position, MemorySegment.ofBuffer(dst), 0, n);
      dst.position(dst.position() + n);
      position += n;
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }
}
