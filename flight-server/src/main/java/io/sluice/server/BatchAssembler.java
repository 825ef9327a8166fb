package io.sluice.server;

import io.sluice.client.Protocol;
import io.sluice.format.SampleExtents;
import io.sluice.format.SampleSource;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.UInt8Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Gathers one batch's samples into a fresh Arrow batch: {@code sample_id} here, the data columns by
 * the dataset's format. Owned by the stream's thread.
 */
final class BatchAssembler {
  private final SampleSource source;
  private final Schema schema;
  private final BufferAllocator allocator;

  BatchAssembler(SampleSource source, Schema schema, BufferAllocator allocator) {
    this.source = source;
    this.schema = schema;
    this.allocator = allocator;
  }

  /** A new root holding {@code count} samples read by the source; the caller closes it. */
  VectorSchemaRoot assemble(long[] sampleIds, int count) throws IOException {
    return assemble(sampleIds, count, null);
  }

  /**
   * A new root holding {@code count} samples whose bytes are in memory already ({@code bytes[i]}
   * for {@code sampleIds[i]}, from the read-ahead); the caller closes it.
   */
  VectorSchemaRoot assembleFrom(long[] sampleIds, int count, MemorySegment[] bytes)
      throws IOException {
    return assemble(sampleIds, count, bytes);
  }

  private VectorSchemaRoot assemble(long[] sampleIds, int count, MemorySegment[] bytes)
      throws IOException {
    VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
    try {
      UInt8Vector ids = (UInt8Vector) root.getVector(Protocol.SAMPLE_ID_COLUMN);
      ids.allocateNew(count);
      for (int i = 0; i < count; i++) {
        ids.set(i, sampleIds[i]);
      }
      ids.setValueCount(count);
      if (bytes == null) {
        source.fill(sampleIds, count, root);
      } else {
        ((SampleExtents) source).fillFrom(sampleIds, count, bytes, root);
      }
      root.setRowCount(count);
      return root;
    } catch (IOException | RuntimeException e) {
      root.close();
      throw e;
    }
  }
}
