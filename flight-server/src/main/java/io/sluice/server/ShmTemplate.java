package io.sluice.server;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.apache.arrow.vector.ipc.message.ArrowBuffer;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The shm message of one fixed-width batch, kept to write the stream's next batches straight from
 * the sample cache into the ring: for a schema of {@code sample_id} and one fixed-size list of
 * integers ({@code tokens}), a batch of the same row count has the same IPC metadata, the same
 * all-valid validity buffers and the same buffer offsets; only the ids and the token bytes differ.
 * Writing through the template skips building the batch in Arrow buffers (an allocation, zeroing
 * and a copy) and copying it again into the ring: each sample's bytes are copied once, from the
 * cache to the ring.
 */
final class ShmTemplate {
  private final MemorySegment message; // a complete message of `rows` rows, as first written
  private final int rows;
  private final long idsAt;
  private final long tokensAt;
  private final long sampleBytes;

  private ShmTemplate(
      MemorySegment message, int rows, long idsAt, long tokensAt, long sampleBytes) {
    this.message = message;
    this.rows = rows;
    this.idsAt = idsAt;
    this.tokensAt = tokensAt;
    this.sampleBytes = sampleBytes;
  }

  /**
   * The template of {@code batch}, just written as a message of {@code written} bytes whose body
   * starts at {@code bodyAt}; null when the schema is not {@code sample_id} plus one fixed-size
   * list of integers.
   */
  static ShmTemplate of(Schema schema, ArrowRecordBatch batch, MemorySegment written, long bodyAt) {
    TokenBatches.TokenShape shape = TokenBatches.tokenShape(schema);
    if (shape == null) {
      return null;
    }
    // Body buffers in order: sample_id validity, data; list validity; values validity, data.
    List<ArrowBuffer> layout = batch.getBuffersLayout();
    int rows = batch.getLength();
    long sample = shape.sampleBytes();
    if (layout.size() != 5
        || layout.get(1).getSize() != 8L * rows
        || layout.get(4).getSize() != sample * rows) {
      return null;
    }
    MemorySegment copy = MemorySegment.ofArray(written.toArray(ValueLayout.JAVA_BYTE));
    return new ShmTemplate(
        copy, rows, bodyAt + layout.get(1).getOffset(), bodyAt + layout.get(4).getOffset(), sample);
  }

  /** The message's size in bytes. */
  long bytes() {
    return message.byteSize();
  }

  /** Whether a batch of {@code count} samples of these sizes can be written through it. */
  boolean fits(int count, MemorySegment[] samples) {
    return count == rows && TokenBatches.firstOfOtherSize(samples, count, sampleBytes) < 0;
  }

  /**
   * Writes the batch of {@code ids} with {@code samples}' bytes at {@code at} in {@code region}.
   */
  void write(MemorySegment region, long at, long[] ids, MemorySegment[] samples) {
    long idsEnd = idsAt + 8L * rows;
    long tokensEnd = tokensAt + sampleBytes * rows;
    MemorySegment.copy(message, 0, region, at, idsAt);
    MemorySegment.copy(ids, 0, region, TokenBatches.SAMPLE_ID, at + idsAt, rows);
    MemorySegment.copy(message, idsEnd, region, at + idsEnd, tokensAt - idsEnd);
    TokenBatches.gather(samples, rows, sampleBytes, region, at + tokensAt);
    MemorySegment.copy(message, tokensEnd, region, at + tokensEnd, message.byteSize() - tokensEnd);
  }
}
