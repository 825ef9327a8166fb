package io.sluice.format.megatron;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Manifest;
import io.sluice.format.SampleExtents;
import io.sluice.format.SampleSource;
import io.sluice.format.ShardEntry;
import io.sluice.planner.DatasetLayout;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadFile;
import io.sluice.read.ReadFiles;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * An indexed Megatron dataset open for reading: column {@code tokens}, a list of the dtype, one row
 * per sequence. The {@code .idx} files stay mapped in one shared arena for the source's life;
 * sequence bytes are read from the {@code .bin} straight into the list's data buffer. Safe for
 * concurrent {@link #fill} calls from many stream threads.
 */
public final class MegatronSource implements SampleSource, SampleExtents {
  public static final String TOKENS_COLUMN = "tokens";

  /** Largest single read; {@link ArrowBuf#nioBuffer(long, int)} takes an int length. */
  private static final int MAX_READ_BYTES = 1 << 30;

  private final Manifest manifest;
  private final DatasetLayout layout;
  private final MegatronDtype dtype;
  private final Schema schema;
  private final Arena arena;
  private final MegatronIdx[] indexes;
  private final ReadFile[] bins;
  private boolean closed;

  MegatronSource(Path dir, Manifest manifest, MegatronDtype dtype, ReadBackend backend)
      throws IOException {
    this.manifest = manifest;
    this.layout = manifest.layout();
    this.dtype = dtype;
    this.schema = new Schema(List.of(tokensField(dtype)));
    this.arena = Arena.ofShared();
    int shards = manifest.shards().size();
    this.indexes = new MegatronIdx[shards];
    this.bins = new ReadFile[shards];
    try {
      for (int i = 0; i < shards; i++) {
        ShardEntry s = manifest.shards().get(i);
        if (s.companions().size() != 1) {
          throw new DatasetFormatException(
              dir.resolve(Manifest.FILE_NAME),
              -1,
              "shard " + s.path() + " must list exactly one companion .idx; re-run index");
        }
        MegatronIdx idx =
            MegatronIdx.map(
                dir.resolve(s.companions().get(0).path()),
                s.companions().get(0).lengthBytes(),
                arena);
        if (idx.dtype() != dtype || idx.sequenceCount() != s.samples()) {
          throw new DatasetFormatException(
              idx.path(),
              MegatronIdx.DTYPE_OFFSET,
              "dtype="
                  + idx.dtype().wireName()
                  + " and sequence count="
                  + idx.sequenceCount()
                  + " expected "
                  + dtype.wireName()
                  + " and "
                  + s.samples()
                  + " as indexed; re-run sluice dataset index");
        }
        indexes[i] = idx;
        bins[i] = backend.open(dir.resolve(s.path()));
      }
    } catch (IOException | RuntimeException e) {
      try {
        close();
      } catch (IOException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  /** {@code tokens}: list&lt;dtype&gt;, not nullable. */
  public static Field tokensField(MegatronDtype dtype) {
    Field element = new Field("item", FieldType.notNullable(dtype.arrowType()), null);
    return new Field(
        TOKENS_COLUMN, FieldType.notNullable(ArrowType.List.INSTANCE), List.of(element));
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

  public MegatronDtype dtype() {
    return dtype;
  }

  @Override
  public void fill(long[] sampleIds, int count, VectorSchemaRoot root) throws IOException {
    ListVector tokens = (ListVector) root.getVector(TOKENS_COLUMN);
    if (tokens == null) {
      return;
    }
    int item = dtype.itemSizeBytes();
    // Pass 1: resolve and bound every sequence before allocating anything.
    int[] shardOf = new int[count];
    long[] sequenceOf = new long[count];
    int[] lengths = new int[count];
    long[] pointers = new long[count];
    long elements = 0;
    int current = -1;
    try {
      for (int r = 0; r < count; r++) {
        long id = sampleIds[r];
        int shard = layout.shardOf(id);
        current = shard;
        long seq = id - layout.firstSampleOf(shard);
        MegatronIdx idx = indexes[shard];
        int length = idx.length(seq);
        long pointer = idx.pointer(seq);
        checkEntry(shard, seq, length, pointer);
        elements += length;
        if (elements > Integer.MAX_VALUE) {
          throw new DatasetFormatException(
              idx.path(),
              idx.lengthOffset(seq),
              "a batch of "
                  + count
                  + " sequences holds more than 2^31-1 elements, past an Arrow list's int32 offsets;"
                  + " use a smaller batch_size");
        }
        shardOf[r] = shard;
        sequenceOf[r] = seq;
        lengths[r] = length;
        pointers[r] = pointer;
      }
    } catch (InternalError e) {
      throw indexes[current].shrunk(-1, e); // see MegatronIdx#shrunk
    }
    // Pass 2: allocate exactly, then read each sequence into its slot of the data buffer.
    tokens.setInitialTotalCapacity(count, (int) elements);
    tokens.allocateNew();
    BaseFixedWidthVector data = (BaseFixedWidthVector) tokens.getDataVector();
    ArrowBuf offsets = tokens.getOffsetBuffer();
    ArrowBuf buf = data.getDataBuffer();
    long start = 0;
    offsets.setInt(0, 0);
    for (int r = 0; r < count; r++) {
      read(shardOf[r], sequenceOf[r], pointers[r], (long) lengths[r] * item, buf, start * item);
      start += lengths[r];
      offsets.setInt((long) (r + 1) * Integer.BYTES, (int) start);
    }
    finish(tokens, elements, count);
  }

  private static void finish(ListVector tokens, long elements, int count) {
    BaseFixedWidthVector data = (BaseFixedWidthVector) tokens.getDataVector();
    // Non-nullable columns still carry validity bitmaps in Arrow Java: mark every slot valid.
    data.getValidityBuffer().setOne(0L, (elements + 7) / 8);
    tokens.getValidityBuffer().setOne(0L, (count + 7L) / 8);
    tokens.setLastSet(count - 1);
    tokens.setValueCount(count);
  }

  @Override
  public int fileOf(long sampleId) {
    if (sampleId < 0 || sampleId >= layout.totalSamples()) {
      throw new IllegalArgumentException(
          "sample_id=" + sampleId + " is outside [0, " + layout.totalSamples() + ")");
    }
    return layout.shardOf(sampleId);
  }

  @Override
  public long offsetOf(long sampleId) {
    int shard = fileOf(sampleId);
    long seq = sampleId - layout.firstSampleOf(shard);
    checkedLength(shard, seq);
    return pointerOf(shard, seq);
  }

  @Override
  public int lengthOf(long sampleId) {
    int shard = fileOf(sampleId);
    return checkedLength(shard, sampleId - layout.firstSampleOf(shard));
  }

  /** The sequence's byte length, checked against the index and the .bin as fill checks it. */
  private int checkedLength(int shard, long seq) {
    MegatronIdx idx = indexes[shard];
    int length;
    long pointer;
    try {
      length = idx.length(seq);
      pointer = idx.pointer(seq);
    } catch (InternalError e) {
      throw idx.shrunk(-1, e); // see MegatronIdx#shrunk
    }
    checkEntry(shard, seq, length, pointer);
    int item = dtype.itemSizeBytes();
    if ((long) length * item > MAX_READ_BYTES) {
      throw new DatasetFormatException(
          idx.path(),
          idx.lengthOffset(seq),
          "sequence="
              + seq
              + " of "
              + (long) length * item
              + " bytes is longer than one read ("
              + MAX_READ_BYTES
              + ")");
    }
    return length * item;
  }

  /** An index entry must have a non-negative length and lie inside the shard's .bin. */
  private void checkEntry(int shard, long seq, int length, long pointer) {
    MegatronIdx idx = indexes[shard];
    long binLength = bins[shard].lengthBytes();
    if (length < 0) {
      throw new DatasetFormatException(
          idx.path(),
          idx.lengthOffset(seq),
          "sequence=" + seq + " length=" + length + " must be >= 0 (changed since indexing?)");
    }
    if (pointer < 0 || pointer > binLength - (long) length * dtype.itemSizeBytes()) {
      throw idx.pointerPastBin(seq, pointer, length, bins[shard].path(), binLength);
    }
  }

  /** The sequence's offset in the .bin, as stored (checked by {@link #checkedLength}). */
  private long pointerOf(int shard, long seq) {
    try {
      return indexes[shard].pointer(seq);
    } catch (InternalError e) {
      throw indexes[shard].shrunk(-1, e); // see MegatronIdx#shrunk
    }
  }

  @Override
  public ReadFile file(int index) {
    return bins[index];
  }

  @Override
  public void readSample(long sampleId, ByteBuffer dst) throws IOException {
    int shard = fileOf(sampleId);
    long seq = sampleId - layout.firstSampleOf(shard);
    int bytes = checkedLength(shard, seq);
    if (dst.remaining() != bytes) {
      throw new IllegalArgumentException(
          "dst.remaining=" + dst.remaining() + " != sequence length " + bytes + " bytes");
    }
    long pointer = pointerOf(shard, seq);
    try {
      bins[shard].readFully(pointer, dst);
    } catch (IOException e) {
      throw unreadable(shard, seq, bytes, pointer, pointer, e);
    }
  }

  /** A sequence's bytes could not be read at {@code at} (from {@code pointer}, its start). */
  private DatasetFormatException unreadable(
      int shard, long seq, long bytes, long pointer, long at, IOException e) {
    return new DatasetFormatException(
        bins[shard].path(),
        at,
        "sequence="
            + seq
            + " of "
            + bytes
            + " bytes at pointer="
            + pointer
            + " could not be read ("
            + e.getMessage()
            + ")",
        e);
  }

  @Override
  public void fillFrom(long[] sampleIds, int count, MemorySegment[] bytes, VectorSchemaRoot root) {
    ListVector tokens = (ListVector) root.getVector(TOKENS_COLUMN);
    if (tokens == null) {
      return;
    }
    int item = dtype.itemSizeBytes();
    long elements = 0;
    for (int r = 0; r < count; r++) {
      if (bytes[r].byteSize() % item != 0) {
        throw new IllegalArgumentException(
            "bytes["
                + r
                + "].byteSize="
                + bytes[r].byteSize()
                + " is not whole "
                + dtype.wireName());
      }
      elements += bytes[r].byteSize() / item;
    }
    if (elements > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          "a batch of "
              + count
              + " sequences holds "
              + elements
              + " elements, past an Arrow list's int32 offsets; use a smaller batch_size");
    }
    tokens.setInitialTotalCapacity(count, (int) elements);
    tokens.allocateNew();
    BaseFixedWidthVector data = (BaseFixedWidthVector) tokens.getDataVector();
    ArrowBuf offsets = tokens.getOffsetBuffer();
    ArrowBuf buf = data.getDataBuffer();
    long start = 0;
    offsets.setInt(0, 0);
    for (int r = 0; r < count; r++) {
      long n = bytes[r].byteSize();
      if (n > 0) {
        MemorySegment.copy(
            bytes[r], 0, MemorySegment.ofBuffer(buf.nioBuffer(start * item, (int) n)), 0, n);
      }
      start += n / item;
      offsets.setInt((long) (r + 1) * Integer.BYTES, (int) start);
    }
    finish(tokens, elements, count);
  }

  private void read(int shard, long seq, long pointer, long bytes, ArrowBuf buf, long dstOffset) {
    ReadFile bin = bins[shard];
    long done = 0;
    while (done < bytes) {
      int chunk = (int) Math.min(bytes - done, MAX_READ_BYTES);
      try {
        bin.readFully(pointer + done, buf.nioBuffer(dstOffset + done, chunk));
      } catch (IOException e) {
        throw unreadable(shard, seq, bytes, pointer, pointer + done, e);
      }
      done += chunk;
    }
  }

  @Override
  public synchronized void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    try {
      ReadFiles.closeAll(bins);
    } finally {
      arena.close();
    }
  }
}
