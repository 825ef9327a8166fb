package io.sluice.format.arrow;

import io.sluice.format.DatasetFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.zip.CRC32;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * {@code NAME.sluice-idx}: a shard's {@link ShardIndex} beside it, so opening a dataset (and
 * re-indexing an unchanged one) reads no shard bytes. Little-endian, written through a temporary
 * file and an atomic rename. Stateless.
 *
 * <pre>
 *   0  8 bytes  magic "SLCARROW"
 *   8  int32    version (1)
 *  12  int32    layout (1 = IPC file, 2 = IPC stream)
 *  16  int64    shard length_bytes when indexed
 *  24  int64    shard mtime_ms when indexed
 *  32  int64    offset of the schema in the shard (for messages)
 *  40  int32    S = schema bytes (an Arrow Schema flatbuffer, fields only)
 *  44  S bytes  schema
 *      int32    B = record batches
 *      B x 24   int64 offset, int32 metadata_length, int64 body_length, int32 rows
 *      int32    CRC-32 of every byte before it
 * </pre>
 */
final class IndexFile {
  static final String SUFFIX = ".sluice-idx";
  static final int VERSION = 1;
  private static final byte[] MAGIC = "SLCARROW".getBytes(StandardCharsets.US_ASCII);
  private static final int HEADER_BYTES = 44;
  private static final int BATCH_BYTES = 24;

  private IndexFile() {}

  /** The index file of shard {@code shard}. */
  static Path of(Path shard) {
    return shard.resolveSibling(shard.getFileName() + SUFFIX);
  }

  static void write(Path path, ShardIndex index) throws IOException {
    byte[] schema = index.schema().serializeAsMessage();
    int n = index.batchCount();
    ByteBuffer b =
        ByteBuffer.allocate(HEADER_BYTES + schema.length + 4 + n * BATCH_BYTES + 4)
            .order(ByteOrder.LITTLE_ENDIAN);
    b.put(MAGIC)
        .putInt(VERSION)
        .putInt(index.layout() == ShardIndex.Layout.FILE ? 1 : 2)
        .putLong(index.mainLengthBytes())
        .putLong(index.mainMtimeMs())
        .putLong(index.schemaOffset())
        .putInt(schema.length)
        .put(schema)
        .putInt(n);
    for (int i = 0; i < n; i++) {
      b.putLong(index.offsets()[i])
          .putInt(index.metadataLengths()[i])
          .putLong(index.bodyLengths()[i])
          .putInt(index.rows()[i]);
    }
    CRC32 crc = new CRC32();
    crc.update(b.array(), 0, b.position());
    b.putInt((int) crc.getValue());
    Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
    Files.write(tmp, b.array());
    Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /** Reads and checks {@code path}; any damage fails naming the file and the offset. */
  static ShardIndex read(Path path) throws IOException {
    long size = Files.size(path);
    if (size < HEADER_BYTES + 8 || size > Integer.MAX_VALUE - 8) {
      throw new DatasetFormatException(
          path, 0, "index of " + size + " bytes; expected a Sluice arrow index (re-run index)");
    }
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
    if (b.capacity() != size) {
      throw new DatasetFormatException(path, -1, "changed while being read");
    }
    byte[] magic = new byte[MAGIC.length];
    b.get(magic);
    if (!java.util.Arrays.equals(magic, MAGIC)) {
      throw new DatasetFormatException(path, 0, "no SLCARROW magic: not a Sluice arrow index");
    }
    int crcAt = b.capacity() - 4;
    CRC32 crc = new CRC32();
    crc.update(b.array(), 0, crcAt);
    if (b.getInt(crcAt) != (int) crc.getValue()) {
      throw new DatasetFormatException(
          path, crcAt, "checksum does not match the contents (damaged; re-run index)");
    }
    int version = b.getInt();
    if (version != VERSION) {
      throw new DatasetFormatException(
          path, 8, "index version=" + version + "; expected " + VERSION + " (re-run index)");
    }
    int layoutCode = b.getInt();
    if (layoutCode != 1 && layoutCode != 2) {
      throw new DatasetFormatException(
          path, 12, "layout=" + layoutCode + "; expected 1 (file) or 2 (stream)");
    }
    long mainLength = b.getLong();
    long mainMtime = b.getLong();
    long schemaOffset = b.getLong();
    int schemaLength = b.getInt();
    if (schemaLength <= 0 || schemaLength > crcAt - HEADER_BYTES - 4) {
      throw new DatasetFormatException(
          path, 40, "schema length=" + schemaLength + " does not fit the file");
    }
    Schema schema;
    try {
      schema = Schema.deserializeMessage(b.slice(HEADER_BYTES, schemaLength));
    } catch (RuntimeException e) {
      throw new DatasetFormatException(path, HEADER_BYTES, "schema does not parse: " + e, e);
    }
    b.position(HEADER_BYTES + schemaLength);
    int n = b.getInt();
    if (n < 0 || (long) n * BATCH_BYTES != crcAt - b.position()) {
      throw new DatasetFormatException(
          path,
          b.position() - 4,
          "batch count=" + n + " does not match the " + (crcAt - b.position()) + " bytes left");
    }
    long[] offsets = new long[n];
    int[] metadataLengths = new int[n];
    long[] bodyLengths = new long[n];
    int[] rows = new int[n];
    for (int i = 0; i < n; i++) {
      int at = b.position();
      offsets[i] = b.getLong();
      metadataLengths[i] = b.getInt();
      bodyLengths[i] = b.getLong();
      rows[i] = b.getInt();
      if (offsets[i] < 0
          || metadataLengths[i] < 8
          || bodyLengths[i] < 0
          || rows[i] < 0
          || metadataLengths[i] + bodyLengths[i] > Integer.MAX_VALUE
          || offsets[i] > mainLength - metadataLengths[i] - bodyLengths[i]) {
        throw new DatasetFormatException(
            path,
            at,
            "batch #"
                + i
                + " (offset="
                + offsets[i]
                + " metadata_length="
                + metadataLengths[i]
                + " body_length="
                + bodyLengths[i]
                + " rows="
                + rows[i]
                + ") does not fit a shard of "
                + mainLength
                + " bytes");
      }
    }
    return new ShardIndex(
        layoutCode == 1 ? ShardIndex.Layout.FILE : ShardIndex.Layout.STREAM,
        mainLength,
        mainMtime,
        schema,
        schemaOffset,
        offsets,
        metadataLengths,
        bodyLengths,
        rows);
  }
}
