package io.sluice.format.arrow;

import org.apache.arrow.vector.types.pojo.Schema;

/**
 * One shard's record batches as indexing found them: where each batch's message starts, how long
 * its metadata (prefix included) and body are, and its rows. Batch i's bytes are {@code [offset,
 * offset + metadataLength + bodyLength)}. Immutable once built (the arrays are not copied; nothing
 * writes them after construction).
 *
 * @param layout whether the shard is an IPC file (footer) or stream
 * @param mainLengthBytes the shard's length when indexed
 * @param mainMtimeMs the shard's mtime when indexed
 * @param schema the shard's schema in served form (fields only)
 * @param schemaOffset where the schema was read (footer or first message), for error messages
 */
record ShardIndex(
    Layout layout,
    long mainLengthBytes,
    long mainMtimeMs,
    Schema schema,
    long schemaOffset,
    long[] offsets,
    int[] metadataLengths,
    long[] bodyLengths,
    int[] rows) {

  /** The two IPC framings. */
  enum Layout {
    /** {@code ARROW1} magic, messages, footer with Blocks (Feather v2 is this). */
    FILE,
    /** Messages until an end-of-stream marker or the end of the file. */
    STREAM
  }

  int batchCount() {
    return offsets.length;
  }

  long totalRows() {
    long n = 0;
    for (int r : rows) {
      n += r;
    }
    return n;
  }
}
