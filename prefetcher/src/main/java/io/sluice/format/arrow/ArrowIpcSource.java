package io.sluice.format.arrow;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.FileStamp;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.format.ShardEntry;
import io.sluice.planner.DatasetLayout;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadFile;
import io.sluice.read.ReadFiles;
import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.OutOfMemoryException;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorLoader;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.compression.NoCompressionCodec;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * An indexed Arrow IPC dataset open for reading. {@link #fill} reads each needed record batch's
 * bytes (message and body, one positional read) into a buffer of the caller's allocator, decodes
 * only the requested columns, checks them, and copies the rows out; every batch is decoded once per
 * call and freed before it returns. Immutable after {@link #open}; safe for concurrent {@code fill}
 * calls.
 */
final class ArrowIpcSource implements SampleSource {
  private final Manifest manifest;
  private final DatasetLayout layout;
  private final IpcSchema schema;
  private final Path[] paths;
  private final ReadFile[] files;

  // Every non-empty record batch of the dataset in sample order ("global batch" g).
  private final long[] batchFirstSample;
  private final int[] batchShard;
  private final int[] batchNumber;
  private final long[] batchOffset;
  private final int[] batchMetadataLength;
  private final int[] batchLength;
  private final int[] batchRows;

  private ArrowIpcSource(
      Manifest manifest, IpcSchema schema, Path[] paths, List<ShardIndex> indexes) {
    this.manifest = manifest;
    this.layout = manifest.layout();
    this.schema = schema;
    this.paths = paths;
    this.files = new ReadFile[paths.length];
    int n = 0;
    for (ShardIndex si : indexes) {
      for (int r : si.rows()) {
        n += r > 0 ? 1 : 0;
      }
    }
    batchFirstSample = new long[n];
    batchShard = new int[n];
    batchNumber = new int[n];
    batchOffset = new long[n];
    batchMetadataLength = new int[n];
    batchLength = new int[n];
    batchRows = new int[n];
    int g = 0;
    long sample = 0;
    for (int s = 0; s < indexes.size(); s++) {
      ShardIndex si = indexes.get(s);
      for (int b = 0; b < si.batchCount(); b++) {
        if (si.rows()[b] == 0) {
          continue;
        }
        batchFirstSample[g] = sample;
        batchShard[g] = s;
        batchNumber[g] = b;
        batchOffset[g] = si.offsets()[b];
        batchMetadataLength[g] = si.metadataLengths()[b];
        batchLength[g] = (int) (si.metadataLengths()[b] + si.bodyLengths()[b]);
        batchRows[g] = si.rows()[b];
        sample += si.rows()[b];
        g++;
      }
    }
  }

  /** Reads every shard's index (checking it against the manifest) and opens the shards. */
  static ArrowIpcSource open(Path dir, Manifest manifest, ReadBackend backend) throws IOException {
    List<ShardEntry> shards = manifest.shards();
    Path[] paths = new Path[shards.size()];
    List<ShardIndex> indexes = new ArrayList<>(shards.size());
    IpcSchema schema = null;
    for (int s = 0; s < shards.size(); s++) {
      ShardEntry e = shards.get(s);
      paths[s] = dir.resolve(e.path());
      Path idx = IndexFile.of(paths[s]);
      String idxName = idx.getFileName().toString();
      if (e.companions().stream().map(FileStamp::path).noneMatch(idxName::equals)) {
        throw new DatasetFormatException(
            dir.resolve(Manifest.FILE_NAME),
            -1,
            "shard " + e.path() + " lists no " + idx.getFileName() + " companion; re-run index");
      }
      ShardIndex si = IndexFile.read(idx);
      if (si.mainLengthBytes() != e.lengthBytes()
          || si.mainMtimeMs() != e.mtimeMs()
          || si.totalRows() != e.samples()) {
        throw new DatasetFormatException(
            idx,
            -1,
            "describes a shard of length_bytes="
                + si.mainLengthBytes()
                + " mtime_ms="
                + si.mainMtimeMs()
                + " rows="
                + si.totalRows()
                + " but the manifest has "
                + e.lengthBytes()
                + ", "
                + e.mtimeMs()
                + ", "
                + e.samples()
                + "; re-run sluice dataset index");
      }
      if (s == 0) {
        schema = IpcSchema.of(si.schema(), paths[s], si.schemaOffset());
      } else if (!schema.schema().equals(si.schema())) {
        throw ArrowIpcFormat.schemaMismatch(paths[s], si, paths[0], indexes.get(0));
      }
      indexes.add(si);
    }
    ArrowIpcSource source = new ArrowIpcSource(manifest, schema, paths, indexes);
    try {
      for (int s = 0; s < paths.length; s++) {
        source.files[s] = backend.open(paths[s]);
      }
    } catch (IOException | RuntimeException e) {
      source.close();
      throw e;
    }
    return source;
  }

  @Override
  public Manifest manifest() {
    return manifest;
  }

  @Override
  public DatasetLayout layout() {
    return layout;
  }

  @Override
  public Schema schema() {
    return schema.schema();
  }

  /** The global batch holding {@code sampleId}. */
  private int batchOf(long sampleId) {
    if (sampleId < 0 || sampleId >= layout.totalSamples()) {
      throw new IllegalArgumentException(
          "sample_id=" + sampleId + " is outside [0, " + layout.totalSamples() + ")");
    }
    int g = Arrays.binarySearch(batchFirstSample, sampleId);
    return g >= 0 ? g : -g - 2;
  }

  /**
   * Rows are copied batch by batch (each batch decoded once), which visits them out of request
   * order; Arrow's variable-width and list vectors can only be appended in order, so unless the
   * request is already in sample order the rows go to a staging root first and are then copied into
   * place.
   */
  @Override
  public void fill(long[] sampleIds, int count, VectorSchemaRoot root) throws IOException {
    List<FieldVector> outs = new ArrayList<>();
    List<Integer> columns = new ArrayList<>();
    List<Field> fields = schema.schema().getFields();
    for (int c = 0; c < fields.size(); c++) {
      FieldVector v = root.getVector(fields.get(c).getName());
      if (v != null) {
        outs.add(v);
        columns.add(c);
      }
    }
    if (outs.isEmpty()) {
      return;
    }
    BufferAllocator allocator = outs.get(0).getAllocator();
    // (global batch << 32 | request index): sorting groups a batch's rows, in request order.
    long[] order = new long[count];
    int[] rowInBatch = new int[count];
    boolean inOrder = true;
    for (int k = 0; k < count; k++) {
      int g = batchOf(sampleIds[k]);
      rowInBatch[k] = (int) (sampleIds[k] - batchFirstSample[g]);
      order[k] = (long) g << 32 | k;
      inOrder &= k == 0 || order[k] > order[k - 1];
    }
    if (!inOrder) {
      Arrays.sort(order);
    }
    Schema projected = new Schema(columns.stream().map(fields::get).toList());
    VectorSchemaRoot staging = inOrder ? null : VectorSchemaRoot.create(projected, allocator);
    try {
      List<FieldVector> targets = inOrder ? outs : staging.getFieldVectors();
      for (FieldVector v : targets) {
        v.setInitialCapacity(count);
        v.allocateNew();
      }
      for (int p = 0; p < count; ) {
        int g = (int) (order[p] >>> 32);
        int q = p + 1;
        while (q < count && (int) (order[q] >>> 32) == g) {
          q++;
        }
        try (VectorSchemaRoot batch = decode(g, columns, projected, allocator)) {
          try {
            for (int r = p; r < q; r++) {
              int k = (int) order[r];
              for (int c = 0; c < targets.size(); c++) {
                targets.get(c).copyFromSafe(rowInBatch[k], r, batch.getVector(c));
              }
            }
          } catch (OutOfMemoryException e) {
            throw e;
          } catch (RuntimeException e) {
            throw bad(g, "rows do not copy: " + e, e);
          }
        }
        p = q;
      }
      if (!inOrder) {
        staging.setRowCount(count);
        int[] stagedAt = new int[count];
        for (int r = 0; r < count; r++) {
          stagedAt[(int) order[r]] = r;
        }
        for (int c = 0; c < outs.size(); c++) {
          FieldVector from = staging.getVector(c);
          FieldVector to = outs.get(c);
          to.setInitialCapacity(count);
          to.allocateNew();
          for (int k = 0; k < count; k++) {
            to.copyFromSafe(stagedAt[k], k, from);
          }
        }
      }
      for (FieldVector v : outs) {
        v.setValueCount(count);
      }
    } finally {
      if (staging != null) {
        staging.close();
      }
    }
  }

  /**
   * Reads global batch {@code g} and loads the given top-level columns into a new root the caller
   * closes. Any inconsistency between the bytes and the index fails naming the file and offset.
   */
  private VectorSchemaRoot decode(
      int g, List<Integer> columns, Schema projected, BufferAllocator allocator)
      throws IOException {
    int shard = batchShard[g];
    Path path = paths[shard];
    long offset = batchOffset[g];
    int metadataLength = batchMetadataLength[g];
    int length = batchLength[g];
    ArrowBuf bytes = allocator.buffer(length);
    VectorSchemaRoot decoded = null;
    try {
      try {
        files[shard].readFully(offset, bytes.nioBuffer(0, length));
      } catch (EOFException e) {
        throw new DatasetFormatException(
            path,
            offset,
            "record batch #"
                + batchNumber[g]
                + " of "
                + length
                + " bytes runs past the end of the file (changed since indexing?)",
            e);
      }
      Message m = IpcMessages.parse(bytes.nioBuffer(0, metadataLength), path, offset);
      long bodyLength = (long) length - metadataLength;
      int rows = IpcMessages.checkRecordBatch(m, schema, bodyLength, path, offset, batchNumber[g]);
      if (rows != batchRows[g]) {
        throw new DatasetFormatException(
            path,
            offset,
            "record batch #"
                + batchNumber[g]
                + " has "
                + rows
                + " rows; the index says "
                + batchRows[g]
                + " (changed since indexing?)");
      }
      RecordBatch rb = (RecordBatch) m.header(new RecordBatch());
      ArrowBuf body = bytes.slice(metadataLength, bodyLength);
      for (int c : columns) {
        String wrong = OffsetsCheck.check(schema, rb, body, c);
        if (wrong != null) {
          throw bad(g, wrong, null);
        }
      }
      List<ArrowFieldNode> nodes = new ArrayList<>();
      List<ArrowBuf> buffers = new ArrayList<>();
      FieldNode node = new FieldNode();
      Buffer buf = new Buffer();
      for (int c : columns) {
        for (int i = schema.columnNodeStart(c); i < schema.columnNodeEnd(c); i++) {
          rb.nodes(node, i);
          nodes.add(new ArrowFieldNode(node.length(), node.nullCount()));
        }
        for (int i = schema.columnBufferStart(c); i < schema.columnBufferEnd(c); i++) {
          rb.buffers(buf, i);
          buffers.add(body.slice(buf.offset(), buf.length()));
        }
      }
      decoded = VectorSchemaRoot.create(projected, allocator);
      try (ArrowRecordBatch batch =
          new ArrowRecordBatch(
              rows,
              nodes,
              buffers,
              NoCompressionCodec.DEFAULT_BODY_COMPRESSION,
              List.of(),
              true,
              true)) {
        new VectorLoader(decoded).load(batch);
      }
      VectorSchemaRoot out = decoded;
      decoded = null;
      return out;
    } catch (DatasetFormatException | OutOfMemoryException e) {
      throw e;
    } catch (RuntimeException e) {
      throw bad(g, "does not decode: " + e, e);
    } finally {
      if (decoded != null) {
        decoded.close();
      }
      bytes.close();
    }
  }

  private DatasetFormatException bad(int g, String what, Throwable cause) {
    return new DatasetFormatException(
        paths[batchShard[g]],
        batchOffset[g],
        "record batch #" + batchNumber[g] + " " + what,
        cause);
  }

  @Override
  public void close() throws IOException {
    ReadFiles.closeAll(files);
  }
}
