package io.sluice.format;

import io.sluice.planner.DatasetLayout;
import java.io.IOException;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * An indexed dataset open for reading: turns sample ids into Arrow columns. Safe for concurrent use
 * by many stream threads.
 */
public interface SampleSource extends AutoCloseable {
  Manifest manifest();

  /** Shards and their sample counts, for the planner. */
  DatasetLayout layout();

  /** The data columns, without {@code sample_id}. */
  Schema schema();

  /**
   * Fills, for rows 0..count-1, every vector of {@code root} whose name is one of {@link
   * #schema()}'s columns with the samples' data (others, such as {@code sample_id}, are left
   * alone). The caller allocated nothing in those vectors and sets the row count afterwards. Bytes
   * that do not match the index fail with a {@link DatasetFormatException}.
   */
  void fill(long[] sampleIds, int count, VectorSchemaRoot root) throws IOException;

  @Override
  void close() throws IOException;
}
