package io.sluice.server;

import io.sluice.client.Protocol;
import io.sluice.format.SampleSource;
import java.io.IOException;
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

  /** A new root holding {@code count} samples; the caller closes it. */
  VectorSchemaRoot assemble(long[] sampleIds, int count) throws IOException {
    VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
    try {
      UInt8Vector ids = (UInt8Vector) root.getVector(Protocol.SAMPLE_ID_COLUMN);
      ids.allocateNew(count);
      for (int i = 0; i < count; i++) {
        ids.set(i, sampleIds[i]);
      }
      ids.setValueCount(count);
      source.fill(sampleIds, count, root);
      root.setRowCount(count);
      return root;
    } catch (IOException | RuntimeException e) {
      root.close();
      throw e;
    }
  }
}
