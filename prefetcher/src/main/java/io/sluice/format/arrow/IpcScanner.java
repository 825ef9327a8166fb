package io.sluice.format.arrow;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.FileStamp;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import org.apache.arrow.flatbuf.Block;
import org.apache.arrow.flatbuf.Footer;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;

/**
 * Indexes one Arrow IPC shard: reads the file format's footer, or walks the stream format's
 * messages, reading only message metadata (never batch bodies) and checking every length against
 * the file's. Owned by the indexing thread; one instance per shard.
 *
 * <pre>
 * file:   "ARROW1" pad2 | schema msg | [dictionary | record batch msg]... | footer | int32 footerLength | "ARROW1"
 * stream: schema msg | [record batch msg]... | [0xFFFFFFFF 0x00000000]
 * msg:    [0xFFFFFFFF] int32 metadataLength | Message flatbuffer + pad | body (bodyLength bytes)
 * </pre>
 */
final class IpcScanner implements AutoCloseable {
  static final byte[] MAGIC = "ARROW1".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] FEATHER_V1 = "FEA1".getBytes(StandardCharsets.US_ASCII);

  /** Largest footer accepted: 24 bytes a batch, so about 11 million batches. */
  static final int MAX_FOOTER_BYTES = 256 << 20;

  private static final int WINDOW_BYTES = 64 << 10;

  private final Path file;
  private final FileChannel channel;
  private final long length;
  private final ByteBuffer window = ByteBuffer.allocate(WINDOW_BYTES);
  private long windowStart;
  private int windowLength;
  private final BatchList batches = new BatchList();
  private String note;

  private IpcScanner(Path file, FileChannel channel, long length) {
    this.file = file;
    this.channel = channel;
    this.length = length;
  }

  /** A scanned shard and, when there is one, a note for the operator. */
  record Result(ShardIndex index, String note) {}

  /** Scans {@code file}, whose stamp was just taken, into a {@link ShardIndex}. */
  static Result scan(Path file, FileStamp stamp) throws IOException {
    try (IpcScanner s =
        new IpcScanner(
            file, FileChannel.open(file, StandardOpenOption.READ), stamp.lengthBytes())) {
      ShardIndex index = s.scan(stamp);
      return new Result(index, s.note);
    }
  }

  private ShardIndex scan(FileStamp stamp) throws IOException {
    if (length >= 4 && Arrays.equals(bytes(0, 4), FEATHER_V1)) {
      throw new DatasetFormatException(
          file,
          0,
          "this is a Feather v1 file; only Feather v2 (the Arrow IPC file format) is served:"
              + " rewrite it with pyarrow.feather.write_feather(..., version=2)");
    }
    boolean isFile = length >= MAGIC.length && Arrays.equals(bytes(0, MAGIC.length), MAGIC);
    return isFile ? scanFile(stamp) : scanStream(stamp);
  }

  private ShardIndex scanFile(FileStamp stamp) throws IOException {
    long trailer = length - 10; // int32 footer length + "ARROW1"
    if (length < 8 + 10) {
      throw new DatasetFormatException(
          file,
          length,
          "file starts with the Arrow IPC magic ARROW1 but ends after "
              + length
              + " bytes; expected a footer and a closing ARROW1 (truncated?)");
    }
    if (!Arrays.equals(bytes(length - MAGIC.length, MAGIC.length), MAGIC)) {
      throw new DatasetFormatException(
          file,
          length - MAGIC.length,
          "no closing ARROW1 magic at the end of an Arrow IPC file (truncated, or still being"
              + " written?)");
    }
    int footerLength = read(trailer, 4).getInt(0);
    long footerStart = trailer - footerLength;
    if (footerLength <= 0 || footerLength > MAX_FOOTER_BYTES || footerStart < 8) {
      throw new DatasetFormatException(
          file,
          trailer,
          "footer length="
              + footerLength
              + "; expected 1.."
              + Math.min(MAX_FOOTER_BYTES, trailer - 8)
              + " bytes before offset "
              + trailer);
    }
    // Its own buffer: the block loop below reads through the window.
    ByteBuffer footerBytes = ByteBuffer.allocate(footerLength);
    readFully(footerStart, footerBytes);
    footerBytes.flip().order(ByteOrder.LITTLE_ENDIAN);
    Footer footer;
    org.apache.arrow.flatbuf.Schema fbSchema;
    int batchCount;
    try {
      footer = Footer.getRootAsFooter(footerBytes);
      fbSchema = footer.schema();
      batchCount = footer.recordBatchesLength();
      if (footer.dictionariesLength() != 0) {
        throw new DatasetFormatException(
            file,
            footerStart,
            "the file has dictionary batches; dictionary-encoded columns are not served");
      }
    } catch (DatasetFormatException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new DatasetFormatException(
          file, footerStart, "footer is not a valid Footer flatbuffer: " + e, e);
    }
    if (fbSchema == null) {
      throw new DatasetFormatException(file, footerStart, "footer has no schema");
    }
    IpcSchema schema =
        IpcSchema.of(
            IpcSchema.convert(fbSchema, footerLength, file, footerStart), file, footerStart);
    if (batchCount < 0 || batchCount > footerLength / 24) {
      throw new DatasetFormatException(
          file,
          footerStart,
          "footer lists " + batchCount + " record batches, more than its bytes can hold");
    }
    Block block = new Block();
    for (int i = 0; i < batchCount; i++) {
      long offset;
      int metadataLength;
      long bodyLength;
      try {
        footer.recordBatches(block, i);
        offset = block.offset();
        metadataLength = block.metaDataLength();
        bodyLength = block.bodyLength();
      } catch (RuntimeException e) {
        throw new DatasetFormatException(
            file, footerStart, "footer block #" + i + " is not readable: " + e, e);
      }
      if (offset < 8
          || metadataLength < 8
          || metadataLength > IpcMessages.MAX_METADATA_BYTES
          || bodyLength < 0
          || offset > footerStart - metadataLength
          || bodyLength > footerStart - metadataLength - offset) {
        throw new DatasetFormatException(
            file,
            footerStart,
            "footer block #"
                + i
                + " (offset="
                + offset
                + " metadata_length="
                + metadataLength
                + " body_length="
                + bodyLength
                + ") does not lie between the header and the footer at "
                + footerStart);
      }
      Message m = IpcMessages.parse(read(offset, metadataLength), file, offset);
      int rows = IpcMessages.checkRecordBatch(m, schema, bodyLength, file, offset, i);
      add(offset, metadataLength, bodyLength, rows);
    }
    return index(ShardIndex.Layout.FILE, stamp, schema, footerStart);
  }

  private ShardIndex scanStream(FileStamp stamp) throws IOException {
    IpcSchema schema = null;
    long pos = 0;
    int batch = 0;
    while (pos < length) {
      if (length - pos < 4) {
        throw truncated(pos, "the 4-byte message length runs past the end of the file");
      }
      int prefix = 4;
      int metadataLength = read(pos, 4).getInt(0);
      if (metadataLength == IpcMessages.CONTINUATION) {
        if (length - pos < 8) {
          throw truncated(
              pos, "the message length after a 0xFFFFFFFF marker runs past the end of the file");
        }
        prefix = 8;
        metadataLength = read(pos + 4, 4).getInt(0);
      }
      if (metadataLength == 0) {
        long rest = length - pos - prefix;
        if (rest > 0) {
          note = "file=" + file + ": " + rest + " bytes after the end-of-stream marker ignored";
        }
        break;
      }
      if (metadataLength < 0 || metadataLength > IpcMessages.MAX_METADATA_BYTES) {
        throw new DatasetFormatException(
            file,
            pos,
            "message metadata length="
                + metadataLength
                + "; expected 1.."
                + IpcMessages.MAX_METADATA_BYTES
                + (schema == null ? " (is this an Arrow IPC stream or file at all?)" : ""));
      }
      if (metadataLength > length - pos - prefix) {
        throw truncated(
            pos, "message metadata length=" + metadataLength + " runs past the end of the file");
      }
      Message m = IpcMessages.parseFlatbuffer(read(pos + prefix, metadataLength), file, pos);
      long bodyStart = pos + prefix + metadataLength;
      long bodyLength = m.bodyLength();
      if (bodyLength > length - bodyStart) {
        throw truncated(
            pos,
            "message body of "
                + bodyLength
                + " bytes from offset "
                + bodyStart
                + " runs past the end of the file");
      }
      byte type = m.headerType();
      if (schema == null) {
        if (type != MessageHeader.Schema) {
          throw new DatasetFormatException(
              file,
              pos,
              "first message is "
                  + IpcMessages.headerName(type)
                  + "; an Arrow IPC stream starts with a Schema message");
        }
        org.apache.arrow.flatbuf.Schema fb;
        try {
          fb = (org.apache.arrow.flatbuf.Schema) m.header(new org.apache.arrow.flatbuf.Schema());
        } catch (RuntimeException e) {
          throw new DatasetFormatException(file, pos, "schema message does not parse: " + e, e);
        }
        if (fb == null) {
          throw new DatasetFormatException(file, pos, "schema message has no Schema header");
        }
        schema = IpcSchema.of(IpcSchema.convert(fb, metadataLength, file, pos), file, pos);
      } else if (type == MessageHeader.RecordBatch) {
        int rows = IpcMessages.checkRecordBatch(m, schema, bodyLength, file, pos, batch++);
        add(pos, prefix + metadataLength, bodyLength, rows);
      } else if (type == MessageHeader.DictionaryBatch) {
        throw new DatasetFormatException(
            file, pos, "dictionary batch: dictionary-encoded columns are not served");
      } else {
        throw new DatasetFormatException(
            file,
            pos,
            IpcMessages.headerName(type) + " message; expected RecordBatch or end of stream");
      }
      pos = bodyStart + bodyLength;
    }
    if (schema == null) {
      throw new DatasetFormatException(
          file, 0, "empty Arrow IPC stream; expected a Schema message first");
    }
    return index(ShardIndex.Layout.STREAM, stamp, schema, 0);
  }

  private DatasetFormatException truncated(long pos, String what) {
    return new DatasetFormatException(file, pos, what + " at " + length + " (truncated?)");
  }

  private void add(long offset, int metadataLength, long bodyLength, int rows) {
    if (metadataLength + bodyLength > Integer.MAX_VALUE) {
      throw new DatasetFormatException(
          file,
          offset,
          "record batch of "
              + (metadataLength + bodyLength)
              + " bytes; batches over 2 GiB are not served (write smaller batches)");
    }
    batches.add(offset, metadataLength, bodyLength, rows);
  }

  private ShardIndex index(
      ShardIndex.Layout layout, FileStamp stamp, IpcSchema schema, long schemaOffset) {
    return new ShardIndex(
        layout,
        stamp.lengthBytes(),
        stamp.mtimeMs(),
        schema.schema(),
        schemaOffset,
        Arrays.copyOf(batches.offsets, batches.size),
        Arrays.copyOf(batches.metadataLengths, batches.size),
        Arrays.copyOf(batches.bodyLengths, batches.size),
        Arrays.copyOf(batches.rows, batches.size));
  }

  private byte[] bytes(long offset, int n) throws IOException {
    byte[] b = new byte[n];
    read(offset, n).get(b);
    return b;
  }

  /**
   * {@code n} bytes at {@code offset} as a little-endian buffer of exactly that size, valid until
   * the next read; callers have checked the range lies in the file. Small reads come from a 64 KiB
   * window, so walking a stream's messages costs one read per window, not two per message.
   */
  private ByteBuffer read(long offset, int n) throws IOException {
    if (n > WINDOW_BYTES) {
      ByteBuffer b = ByteBuffer.allocate(n);
      readFully(offset, b);
      return b.flip().order(ByteOrder.LITTLE_ENDIAN);
    }
    if (offset < windowStart || offset + n > windowStart + windowLength) {
      window.clear().limit((int) Math.min(WINDOW_BYTES, length - offset));
      readFully(offset, window);
      windowStart = offset;
      windowLength = window.position();
    }
    return window.slice((int) (offset - windowStart), n).order(ByteOrder.LITTLE_ENDIAN);
  }

  private void readFully(long offset, ByteBuffer dst) throws IOException {
    long pos = offset;
    while (dst.hasRemaining()) {
      int r = channel.read(dst, pos);
      if (r < 0) {
        throw new DatasetFormatException(
            file,
            pos,
            "file ended while indexing; expected " + length + " bytes (changed during indexing?)",
            new EOFException());
      }
      pos += r;
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }

  /** Growable parallel arrays of batch fields. */
  private static final class BatchList {
    long[] offsets = new long[16];
    int[] metadataLengths = new int[16];
    long[] bodyLengths = new long[16];
    int[] rows = new int[16];
    int size;

    void add(long offset, int metadataLength, long bodyLength, int rowCount) {
      if (size == offsets.length) {
        int n = size * 2;
        offsets = Arrays.copyOf(offsets, n);
        metadataLengths = Arrays.copyOf(metadataLengths, n);
        bodyLengths = Arrays.copyOf(bodyLengths, n);
        rows = Arrays.copyOf(rows, n);
      }
      offsets[size] = offset;
      metadataLengths[size] = metadataLength;
      bodyLengths[size] = bodyLength;
      rows[size] = rowCount;
      size++;
    }
  }
}
