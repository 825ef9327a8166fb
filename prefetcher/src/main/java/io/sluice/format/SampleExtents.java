package io.sluice.format;

import io.sluice.read.ReadFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * A source whose samples are each one contiguous byte range of one shard file, so the prefetcher
 * can read them ahead into the sample cache and the batch be assembled from there. Formats write a
 * shard's samples in id order, so ascending ids usually lie at ascending offsets and nearby ranges
 * can be read as one; the prefetcher checks this per read and reads apart whatever is not side by
 * side. Methods may throw {@link DatasetFormatException} for an index entry that does not fit the
 * shard.
 */
public interface SampleExtents {
  /** The shard file holding {@code sampleId} (its index in the manifest). */
  int fileOf(long sampleId);

  /** The byte offset of {@code sampleId} in its shard file. */
  long offsetOf(long sampleId);

  /** The sample's length in bytes. */
  int lengthOf(long sampleId);

  /** The open shard file {@code index}, as {@link #fileOf} numbers them. */
  ReadFile file(int index);

  /**
   * Reads one sample into {@code dst} (exactly {@link #lengthOf} bytes of room), mapping a read
   * past the end of the shard to a {@link DatasetFormatException} naming the file and offset.
   */
  void readSample(long sampleId, ByteBuffer dst) throws IOException;

  /**
   * As {@link SampleSource#fill}, from sample bytes already in memory: {@code bytes[i]} holds
   * sample {@code sampleIds[i]}'s extent.
   */
  void fillFrom(long[] sampleIds, int count, MemorySegment[] bytes, VectorSchemaRoot root)
      throws IOException;
}
