package io.sluice.format.wds;

import io.sluice.format.DatasetFormatException;
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
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BaseVariableWidthVector;
import org.apache.arrow.vector.BitVectorHelper;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * An indexed WebDataset folder open for reading. Every shard's index stays in memory; {@code fill}
 * reads exactly each member's data range through the {@link ReadBackend} straight into the binary
 * vectors' data buffers. Stateless between calls, so any number of stream threads may fill at once.
 */
final class WdsSource implements SampleSource {
  private static final int OFFSET_WIDTH = BaseVariableWidthVector.OFFSET_WIDTH;

  private final Manifest manifest;
  private final DatasetLayout layout;
  private final Schema schema;
  private final List<String> extensions;
  private final ShardIndex[] indexes;

  /** Per shard: its local extension id to the dataset's extension (column) index. */
  private final int[][] columnOfExtension;

  private final ReadFile[] files;

  WdsSource(Path dir, Manifest manifest, List<String> extensions, ReadBackend backend)
      throws IOException {
    this.manifest = manifest;
    this.layout = manifest.layout();
    this.extensions = List.copyOf(extensions);
    List<Field> fields = new ArrayList<>();
    fields.add(new Field(WdsFormat.KEY_COLUMN, FieldType.notNullable(new ArrowType.Utf8()), null));
    Map<String, Integer> columnByExtension = new HashMap<>();
    for (String e : extensions) {
      columnByExtension.put(e, columnByExtension.size());
      fields.add(new Field(e, FieldType.nullable(new ArrowType.Binary()), null));
    }
    this.schema = new Schema(fields);
    int n = manifest.shards().size();
    this.indexes = new ShardIndex[n];
    this.columnOfExtension = new int[n][];
    for (int i = 0; i < n; i++) {
      ShardEntry shard = manifest.shards().get(i);
      if (shard.companions().size() != 1) {
        throw new DatasetFormatException(
            dir.resolve(Manifest.FILE_NAME),
            -1,
            "one companion index per shard, found "
                + shard.companions().size()
                + " for "
                + shard.path()
                + "; re-run sluice dataset index");
      }
      Path idx = dir.resolve(shard.companions().get(0).path());
      ShardIndex index = ShardIndexFile.read(idx);
      if (index.samples() != shard.samples() || index.tarLengthBytes() != shard.lengthBytes()) {
        throw new DatasetFormatException(
            idx,
            -1,
            "samples="
                + shard.samples()
                + " and tar length_bytes="
                + shard.lengthBytes()
                + " as the manifest says, found "
                + index.samples()
                + " and "
                + index.tarLengthBytes()
                + "; re-run sluice dataset index");
      }
      int[] map = new int[index.extensions().size()];
      for (int x = 0; x < map.length; x++) {
        Integer c = columnByExtension.get(index.extensions().get(x));
        if (c == null) {
          throw new DatasetFormatException(
              idx,
              -1,
              "extensions listed in the manifest, found "
                  + index.extensions().get(x)
                  + "; re-run sluice dataset index");
        }
        map[x] = c;
      }
      indexes[i] = index;
      columnOfExtension[i] = map;
    }
    this.files = new ReadFile[n];
    try {
      for (int i = 0; i < n; i++) {
        files[i] = backend.open(dir.resolve(manifest.shards().get(i).path()));
      }
    } catch (IOException | RuntimeException e) {
      close();
      throw e;
    }
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

  @Override
  public void fill(long[] sampleIds, int count, VectorSchemaRoot root) throws IOException {
    int[] shardOf = new int[count];
    int[] sampleOf = new int[count];
    for (int i = 0; i < count; i++) {
      long id = sampleIds[i];
      if (id < 0 || id >= layout.totalSamples()) {
        throw new IllegalArgumentException(
            "sample_id=" + id + " is outside [0, " + layout.totalSamples() + ")");
      }
      int shard = layout.shardOf(id);
      shardOf[i] = shard;
      sampleOf[i] = (int) (id - layout.firstSampleOf(shard));
    }
    BaseVariableWidthVector keys = vector(root, WdsFormat.KEY_COLUMN);
    if (keys != null) {
      fillKeys(keys, shardOf, sampleOf, count);
    }
    BaseVariableWidthVector[] columns = new BaseVariableWidthVector[extensions.size()];
    boolean any = false;
    for (int c = 0; c < columns.length; c++) {
      columns[c] = vector(root, extensions.get(c));
      any |= columns[c] != null;
    }
    if (any) {
      fillMembers(columns, shardOf, sampleOf, count);
    }
  }

  private static BaseVariableWidthVector vector(VectorSchemaRoot root, String name) {
    FieldVector v = root.getVector(name);
    return v == null ? null : (BaseVariableWidthVector) v;
  }

  private void fillKeys(BaseVariableWidthVector keys, int[] shardOf, int[] sampleOf, int count) {
    long total = 0;
    for (int i = 0; i < count; i++) {
      ShardIndex x = indexes[shardOf[i]];
      total += x.keyEnd(sampleOf[i]) - x.keyStart(sampleOf[i]);
    }
    if (count > 0) {
      checkColumnBytes(total, WdsFormat.KEY_COLUMN, shardOf[count - 1], -1);
    }
    keys.allocateNew(total, count);
    ArrowBuf data = keys.getDataBuffer();
    ArrowBuf offsets = keys.getOffsetBuffer();
    int end = 0;
    for (int i = 0; i < count; i++) {
      ShardIndex x = indexes[shardOf[i]];
      int start = x.keyStart(sampleOf[i]);
      int length = x.keyEnd(sampleOf[i]) - start;
      data.setBytes(end, x.keyBytes(), start, length);
      end += length;
      offsets.setInt((long) (i + 1) * OFFSET_WIDTH, end);
    }
    keys.getValidityBuffer().setOne(0L, (count + 7L) / 8);
    keys.setLastSet(count - 1);
    keys.setValueCount(count);
  }

  private void fillMembers(
      BaseVariableWidthVector[] columns, int[] shardOf, int[] sampleOf, int count)
      throws IOException {
    // Pass 1: each column's byte total, so every data buffer is allocated once at its final size.
    long[] total = new long[columns.length];
    for (int i = 0; i < count; i++) {
      ShardIndex x = indexes[shardOf[i]];
      int[] map = columnOfExtension[shardOf[i]];
      int s = sampleOf[i];
      for (int m = x.memberStart(s); m < x.memberEnd(s); m++) {
        int c = map[x.extension(m)];
        if (columns[c] != null) {
          total[c] += x.dataLength(m);
          checkColumnBytes(total[c], extensions.get(c), shardOf[i], x.dataOffset(m));
        }
      }
    }
    for (int c = 0; c < columns.length; c++) {
      if (columns[c] != null) {
        columns[c].allocateNew(total[c], count);
      }
    }
    // Pass 2: sample by sample, so one sample's members (adjacent in the tar) are read in order.
    long[] end = new long[columns.length];
    for (int i = 0; i < count; i++) {
      int shard = shardOf[i];
      ShardIndex x = indexes[shard];
      int[] map = columnOfExtension[shard];
      int s = sampleOf[i];
      for (int m = x.memberStart(s); m < x.memberEnd(s); m++) {
        int c = map[x.extension(m)];
        BaseVariableWidthVector v = columns[c];
        if (v == null) {
          continue;
        }
        int length = (int) x.dataLength(m); // checked in pass 1
        if (length > 0) {
          read(shard, x, s, m, c, v.getDataBuffer(), end[c], length);
        }
        end[c] += length;
        BitVectorHelper.setBit(v.getValidityBuffer(), i);
      }
      for (int c = 0; c < columns.length; c++) {
        if (columns[c] != null) {
          columns[c].getOffsetBuffer().setInt((long) (i + 1) * OFFSET_WIDTH, (int) end[c]);
        }
      }
    }
    for (BaseVariableWidthVector v : columns) {
      if (v != null) {
        v.setLastSet(count - 1);
        v.setValueCount(count);
      }
    }
  }

  private void read(
      int shard,
      ShardIndex x,
      int sample,
      int member,
      int column,
      ArrowBuf dst,
      long at,
      int length)
      throws IOException {
    long offset = x.dataOffset(member);
    try {
      files[shard].readFully(offset, dst.nioBuffer(at, length));
    } catch (EOFException e) {
      throw new DatasetFormatException(
          files[shard].path(),
          offset,
          length
              + " bytes of member key="
              + x.key(sample)
              + " extension="
              + extensions.get(column)
              + ", found end of file (changed since indexing? re-run sluice dataset index)",
          e);
    }
  }

  /** Binary offsets are 32-bit: one column of one batch must stay under 2 GiB. */
  private void checkColumnBytes(long bytes, String column, int shard, long offset) {
    if (bytes > Integer.MAX_VALUE) {
      throw new DatasetFormatException(
          files[shard].path(),
          offset,
          "column "
              + column
              + " of this batch under 2 GiB (32-bit binary offsets), found "
              + bytes
              + " bytes so far; use a smaller batch_size");
    }
  }

  @Override
  public void close() throws IOException {
    ReadFiles.closeAll(files);
  }
}
