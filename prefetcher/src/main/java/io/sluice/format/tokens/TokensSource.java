package io.sluice.format.tokens;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Manifest;
import io.sluice.format.SampleExtents;
import io.sluice.format.SampleSource;
import io.sluice.planner.DatasetLayout;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadFile;
import io.sluice.read.ReadFiles;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * An indexed token dataset open for reading: column {@code tokens}, a fixed_size_list of the dtype.
 * Sample bytes are read straight into the vector's data buffer, no heap copy.
 */
public final class TokensSource implements SampleSource, SampleExtents {
  public static final String TOKENS_COLUMN = "tokens";

  private final Manifest manifest;
  private final DatasetLayout layout;
  private final TokenDtype dtype;
  private final int seqLen;
  private final Schema schema;
  private final ReadFile[] files;
  private final ReadBackend backend;

  TokensSource(Path dir, Manifest manifest, TokenDtype dtype, int seqLen, ReadBackend backend)
      throws IOException {
    this.manifest = manifest;
    this.layout = manifest.layout();
    this.dtype = dtype;
    this.seqLen = seqLen;
    this.schema = new Schema(List.of(tokensField(dtype, seqLen)));
    this.backend = backend;
    this.files = new ReadFile[manifest.shards().size()];
    try {
      for (int i = 0; i < files.length; i++) {
        files[i] = backend.open(dir.resolve(manifest.shards().get(i).path()));
      }
    } catch (IOException | RuntimeException e) {
      close();
      throw e;
    }
  }

  /** {@code tokens}: fixed_size_list&lt;dtype&gt;[seq_len], not nullable. */
  public static Field tokensField(TokenDtype dtype, int seqLen) {
    Field element =
        new Field(
            "item", FieldType.notNullable(new ArrowType.Int(dtype.widthBytes() * 8, false)), null);
    return new Field(
        TOKENS_COLUMN,
        FieldType.notNullable(new ArrowType.FixedSizeList(seqLen)),
        List.of(element));
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
    return schema;
  }

  public TokenDtype dtype() {
    return dtype;
  }

  public int seqLen() {
    return seqLen;
  }

  public int sampleLengthBytes() {
    return seqLen * dtype.widthBytes();
  }

  @Override
  public int fileOf(long sampleId) {
    return shardOf(sampleId);
  }

  @Override
  public long offsetOf(long sampleId) {
    return offsetOf(sampleId, shardOf(sampleId));
  }

  @Override
  public int lengthOf(long sampleId) {
    return sampleLengthBytes();
  }

  @Override
  public ReadFile file(int index) {
    return files[index];
  }

  /** Reads sample {@code sampleId} into {@code dst}, which must have exactly one sample's room. */
  @Override
  public void readSample(long sampleId, ByteBuffer dst) throws IOException {
    int shard = shardOf(sampleId);
    long offset = offsetOf(sampleId, shard);
    try {
      files[shard].readFully(offset, dst);
    } catch (EOFException e) {
      throw pastEnd(sampleId, shard, offset, e);
    }
  }

  private int shardOf(long sampleId) {
    if (sampleId < 0 || sampleId >= layout.totalSamples()) {
      throw new IllegalArgumentException(
          "sample_id=" + sampleId + " is outside [0, " + layout.totalSamples() + ")");
    }
    return layout.shardOf(sampleId);
  }

  private long offsetOf(long sampleId, int shard) {
    return (sampleId - layout.firstSampleOf(shard)) * sampleLengthBytes();
  }

  private DatasetFormatException pastEnd(long sampleId, int shard, long offset, Throwable cause) {
    return new DatasetFormatException(
        files[shard].path(),
        offset,
        "sample_id=" + sampleId + " runs past the end of the shard (truncated since indexing?)",
        cause);
  }

  @Override
  public void fill(long[] sampleIds, int count, VectorSchemaRoot root) throws IOException {
    FixedSizeListVector tokens = (FixedSizeListVector) root.getVector(TOKENS_COLUMN);
    if (tokens == null) {
      return;
    }
    int sampleBytes = sampleLengthBytes();
    ArrowBuf buf = allocate(tokens, count);
    if (backend.prefersBatches()) {
      readBatch(sampleIds, count, buf, sampleBytes);
    } else {
      for (int i = 0; i < count; i++) {
        readSample(sampleIds[i], buf.nioBuffer((long) i * sampleBytes, sampleBytes));
      }
    }
    finish(tokens, count);
  }

  @Override
  public void fillFrom(long[] sampleIds, int count, MemorySegment[] bytes, VectorSchemaRoot root) {
    FixedSizeListVector tokens = (FixedSizeListVector) root.getVector(TOKENS_COLUMN);
    if (tokens == null) {
      return;
    }
    int sampleBytes = sampleLengthBytes();
    ArrowBuf buf = allocate(tokens, count);
    MemorySegment dst = MemorySegment.ofBuffer(buf.nioBuffer(0, count * sampleBytes));
    for (int i = 0; i < count; i++) {
      if (bytes[i].byteSize() != sampleBytes) {
        throw new IllegalArgumentException(
            "bytes["
                + i
                + "].byteSize="
                + bytes[i].byteSize()
                + " != sample length "
                + sampleBytes);
      }
      MemorySegment.copy(bytes[i], 0, dst, (long) i * sampleBytes, sampleBytes);
    }
    finish(tokens, count);
  }

  private static ArrowBuf allocate(FixedSizeListVector tokens, int count) {
    tokens.setInitialCapacity(count);
    tokens.allocateNew();
    return ((BaseFixedWidthVector) tokens.getDataVector()).getDataBuffer();
  }

  private void finish(FixedSizeListVector tokens, int count) {
    int elements = count * seqLen;
    BaseFixedWidthVector data = (BaseFixedWidthVector) tokens.getDataVector();
    // Non-nullable columns still carry validity bitmaps in Arrow Java: mark every slot valid.
    data.getValidityBuffer().setOne(0L, (elements + 7L) / 8);
    data.setValueCount(elements);
    tokens.getValidityBuffer().setOne(0L, (count + 7L) / 8);
    tokens.setValueCount(count);
  }

  /** Issues every sample's read before waiting on any, so the backend keeps them all in flight. */
  private void readBatch(long[] sampleIds, int count, ArrowBuf buf, int sampleBytes)
      throws IOException {
    // Every id is checked before the first read starts: a started read owns its slice of buf
    // until it completes, so none may be left running when this method throws.
    int[] shards = new int[count];
    for (int i = 0; i < count; i++) {
      shards[i] = shardOf(sampleIds[i]);
    }
    List<CompletableFuture<Void>> reads = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      reads.add(
          backend.readAsync(
              files[shards[i]],
              offsetOf(sampleIds[i], shards[i]),
              buf.nioBuffer((long) i * sampleBytes, sampleBytes)));
    }
    Exception first = null;
    for (int i = 0; i < count; i++) {
      try {
        reads.get(i).join();
      } catch (CompletionException e) {
        // Wait for every read even after a failure: each still writes into the batch's buffer.
        if (first == null) {
          Throwable c = e.getCause();
          first =
              c instanceof EOFException
                  ? pastEnd(sampleIds[i], shards[i], offsetOf(sampleIds[i], shards[i]), c)
                  : c instanceof IOException io ? io : new IOException(c.getMessage(), c);
        }
      }
    }
    if (first instanceof IOException io) {
      throw io;
    }
    if (first != null) {
      throw (RuntimeException) first;
    }
  }

  @Override
  public void close() throws IOException {
    ReadFiles.closeAll(files);
  }
}
