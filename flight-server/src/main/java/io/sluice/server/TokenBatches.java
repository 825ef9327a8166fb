package io.sluice.server;

import io.sluice.client.Protocol;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Builds the cpu stream's record batches of a token schema ({@code sample_id} plus one fixed-size
 * list of integers) straight from the read-ahead's sample bytes: ids and tokens go into buffers
 * taken from the allocator without zeroing, and the validity bitmaps, every bit set since nothing
 * is null, are kept per length and shared by every batch (read only). The general path (vectors
 * allocated and zeroed, then filled) spent a sixth of a cpu stream's time allocating and zeroing.
 * Owned by the stream's thread; {@link #close} once the stream ends (batches still queued for the
 * wire hold their own references to the bitmaps).
 */
final class TokenBatches implements AutoCloseable {
  /** A {@code sample_id} as Arrow lays it out: a little-endian uint64. */
  static final ValueLayout.OfLong SAMPLE_ID =
      ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final BufferAllocator allocator;
  private final int listSize;
  private final long sampleBytes;
  private final Map<Long, ArrowBuf> bitmaps = new HashMap<>(); // bits -> `bits` set, rest zero

  private TokenBatches(BufferAllocator allocator, int listSize, long sampleBytes) {
    this.allocator = allocator;
    this.listSize = listSize;
    this.sampleBytes = sampleBytes;
  }

  /** A token schema's data column: its name, values per sample, bytes per value and signedness. */
  record TokenShape(String column, int listSize, int valueBytes, boolean signed) {
    long sampleBytes() {
      return (long) listSize * valueBytes;
    }

    /** The values' type by numpy's name ({@code uint16}, {@code int32}, ...). */
    String dtype() {
      return (signed ? "int" : "uint") + valueBytes * 8;
    }
  }

  /** The shape of a token schema, or null when {@code schema} is not one. */
  static TokenShape tokenShape(Schema schema) {
    List<Field> fields = schema.getFields();
    if (fields.size() != 2
        || !fields.get(0).getName().equals(Protocol.SAMPLE_ID_COLUMN)
        || !(fields.get(1).getType() instanceof ArrowType.FixedSizeList list)
        || fields.get(1).getChildren().size() != 1
        || !(fields.get(1).getChildren().get(0).getType() instanceof ArrowType.Int value)) {
      return null;
    }
    return new TokenShape(
        fields.get(1).getName(), list.getListSize(), value.getBitWidth() / 8, value.getIsSigned());
  }

  /** Batches of {@code schema} from {@code allocator}; null when it is not a token schema. */
  static TokenBatches of(Schema schema, BufferAllocator allocator) {
    TokenShape shape = tokenShape(schema);
    return shape == null
        ? null
        : new TokenBatches(allocator, shape.listSize(), shape.sampleBytes());
  }

  /** Whether {@code count} samples of these sizes make a batch here. */
  boolean fits(int count, MemorySegment[] samples) {
    return firstOfOtherSize(samples, count, sampleBytes) < 0;
  }

  /** The index of the first of {@code samples[0..count)} not {@code sampleBytes} long, or -1. */
  static int firstOfOtherSize(MemorySegment[] samples, int count, long sampleBytes) {
    for (int i = 0; i < count; i++) {
      if (samples[i].byteSize() != sampleBytes) {
        return i;
      }
    }
    return -1;
  }

  /**
   * Copies {@code samples[0..count)}, each {@code sampleBytes} long, back to back into {@code dst}
   * from {@code at}: a batch's token values.
   */
  static void gather(
      MemorySegment[] samples, int count, long sampleBytes, MemorySegment dst, long at) {
    for (int i = 0; i < count; i++) {
      MemorySegment.copy(samples[i], 0, dst, at + i * sampleBytes, sampleBytes);
    }
  }

  /**
   * The record batch of {@code ids[0..count)} with {@code samples}' bytes as their tokens; the
   * caller closes it (loading it into a root keeps the buffers alive there).
   */
  ArrowRecordBatch build(long[] ids, int count, MemorySegment[] samples) {
    long elements = (long) count * listSize;
    ArrowBuf rows = bitmap(count);
    ArrowBuf values = bitmap(elements);
    ArrowBuf idBuf = allocator.buffer(8L * count);
    try {
      ArrowBuf tokenBuf = allocator.buffer(sampleBytes * count);
      try {
        MemorySegment idDst = MemorySegment.ofBuffer(idBuf.nioBuffer(0, 8 * count));
        MemorySegment.copy(ids, 0, idDst, SAMPLE_ID, 0, count);
        if (count > 0) {
          MemorySegment tokenDst =
              MemorySegment.ofBuffer(tokenBuf.nioBuffer(0, (int) (sampleBytes * count)));
          gather(samples, count, sampleBytes, tokenDst, 0);
        }
        idBuf.writerIndex(8L * count);
        tokenBuf.writerIndex(sampleBytes * count);
        // Buffers in IPC order: sample_id validity, data; list validity; values validity, data.
        return new ArrowRecordBatch(
            count,
            List.of(
                new ArrowFieldNode(count, 0),
                new ArrowFieldNode(count, 0),
                new ArrowFieldNode(elements, 0)),
            List.of(rows, idBuf, rows, values, tokenBuf));
      } finally {
        tokenBuf.close(); // the batch holds its own reference
      }
    } finally {
      idBuf.close();
    }
  }

  /** A validity bitmap of {@code bits} valid slots: the first {@code bits} bits set, the rest 0. */
  private ArrowBuf bitmap(long bits) {
    ArrowBuf b = bitmaps.get(bits);
    if (b == null) {
      long bytes = (bits + 7) / 8;
      b = allocator.buffer(bytes);
      b.setZero(0, b.capacity());
      b.setOne(0, bits / 8);
      if (bits % 8 != 0) {
        b.setByte(bits / 8, (1 << (bits % 8)) - 1);
      }
      b.writerIndex(bytes);
      bitmaps.put(bits, b);
    }
    return b;
  }

  @Override
  public void close() {
    bitmaps.values().forEach(ArrowBuf::close);
    bitmaps.clear();
  }
}
