package io.sluice.format.arrow;

import io.sluice.format.DatasetFormatException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.MetadataVersion;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.vector.BufferLayout.BufferType;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;

/**
 * Parses and checks Arrow IPC messages: the encapsulation prefix, the {@code Message} flatbuffer,
 * and a record batch's field nodes and buffers against its schema, so that Arrow Java is only ever
 * handed metadata whose every length and offset lies inside the bytes read. Stateless.
 *
 * <p>An encapsulated message is {@code 0xFFFFFFFF, int32 length, Message flatbuffer, padding,
 * body}; files written before Arrow 0.15 omit the {@code 0xFFFFFFFF}. A length of 0 ends a stream.
 */
final class IpcMessages {
  static final int CONTINUATION = 0xFFFFFFFF;

  /** Largest message metadata accepted: a batch of 100,000 columns needs a few MiB. */
  static final int MAX_METADATA_BYTES = 64 << 20;

  private IpcMessages() {}

  /**
   * The Message in {@code region}: a whole encapsulated metadata block (prefix, flatbuffer,
   * padding), as a file footer's Block gives it or a stream scan found it.
   *
   * @param offset the region's offset in {@code file}, for messages
   */
  static Message parse(ByteBuffer region, Path file, long offset) {
    region = region.slice().order(ByteOrder.LITTLE_ENDIAN);
    if (region.remaining() < 8) {
      throw new DatasetFormatException(
          file,
          offset,
          "message metadata of " + region.remaining() + " bytes; expected at least 8");
    }
    int prefix = region.getInt(0) == CONTINUATION ? 8 : 4;
    int length = region.getInt(prefix - 4);
    if (length <= 0 || length > region.remaining() - prefix) {
      throw new DatasetFormatException(
          file,
          offset,
          "message metadata length="
              + length
              + " does not fit the "
              + (region.remaining() - prefix)
              + " bytes the index or footer gives it");
    }
    return parseFlatbuffer(region.slice(prefix, length), file, offset);
  }

  /**
   * The Message flatbuffer that fills {@code flatbuffer}, with its version, header type and body
   * length known to be readable.
   */
  static Message parseFlatbuffer(ByteBuffer flatbuffer, Path file, long offset) {
    try {
      Message m = Message.getRootAsMessage(flatbuffer.slice().order(ByteOrder.LITTLE_ENDIAN));
      short v = m.version();
      if (v != MetadataVersion.V4 && v != MetadataVersion.V5) {
        throw new DatasetFormatException(
            file,
            offset,
            "message metadata version="
                + v
                + "; expected V4 or V5 (Arrow 0.8 or later; older files must be rewritten)");
      }
      m.headerType(); // read once here, where a bad table fails cleanly
      if (m.bodyLength() < 0) {
        throw new DatasetFormatException(
            file, offset, "message body_length=" + m.bodyLength() + "; expected >= 0");
      }
      return m;
    } catch (DatasetFormatException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new DatasetFormatException(
          file, offset, "message metadata is not a valid Message flatbuffer: " + e, e);
    }
  }

  static String headerName(byte type) {
    return type >= 0 && type < MessageHeader.names.length
        ? MessageHeader.names[type]
        : "unknown(" + type + ")";
  }

  /**
   * Checks that {@code m} is a record batch of {@code schema} whose nodes and buffers fit a body of
   * {@code bodyLength} bytes, and returns its row count.
   */
  static int checkRecordBatch(
      Message m, IpcSchema schema, long bodyLength, Path file, long offset, int batchNumber) {
    String what = "record batch #" + batchNumber;
    try {
      if (m.headerType() != MessageHeader.RecordBatch) {
        throw new DatasetFormatException(
            file,
            offset,
            what + " is a " + headerName(m.headerType()) + " message; expected RecordBatch");
      }
      if (m.bodyLength() != bodyLength) {
        throw new DatasetFormatException(
            file,
            offset,
            what + " body_length=" + m.bodyLength() + " but its footer block says " + bodyLength);
      }
      RecordBatch rb = (RecordBatch) m.header(new RecordBatch());
      if (rb == null) {
        throw new DatasetFormatException(file, offset, what + " has no RecordBatch header");
      }
      if (rb.compression() != null) {
        throw new DatasetFormatException(
            file,
            offset,
            what
                + " is compressed (codec="
                + rb.compression().codec()
                + "); only uncompressed IPC is served: rewrite with compression off (pyarrow:"
                + " feather.write_feather(..., compression='uncompressed') or"
                + " ipc.IpcWriteOptions(compression=None))");
      }
      long rows = rb.length();
      if (rows < 0 || rows > Integer.MAX_VALUE) {
        throw new DatasetFormatException(
            file,
            offset,
            what + " length=" + rows + "; expected 0.." + Integer.MAX_VALUE + " rows");
      }
      if (rb.nodesLength() != schema.nodeCount()
          || rb.buffersLength() != schema.bufferCount()
          || rb.variadicBufferCountsLength() != 0) {
        throw new DatasetFormatException(
            file,
            offset,
            what
                + " has "
                + rb.nodesLength()
                + " field nodes and "
                + rb.buffersLength()
                + " buffers; the schema needs "
                + schema.nodeCount()
                + " and "
                + schema.bufferCount());
      }
      long[] lengths = new long[schema.nodeCount()];
      FieldNode node = new FieldNode();
      Buffer buf = new Buffer();
      for (int i = 0; i < lengths.length; i++) {
        rb.nodes(node, i);
        long n = node.length();
        long nulls = node.nullCount();
        Field field = schema.node(i);
        if (n < 0 || n > Integer.MAX_VALUE || nulls < 0 || nulls > n) {
          throw new DatasetFormatException(
              file,
              offset,
              what
                  + " field "
                  + field.getName()
                  + " has length="
                  + n
                  + " null_count="
                  + nulls
                  + "; expected 0 <= null_count <= length <= "
                  + Integer.MAX_VALUE);
        }
        lengths[i] = n;
        int parent = schema.parent(i);
        long wanted = parent < 0 ? rows : childLength(schema.node(parent), lengths[parent]);
        if (wanted >= 0 && (parent < 0 ? n != wanted : n < wanted)) {
          throw new DatasetFormatException(
              file,
              offset,
              what
                  + " field "
                  + field.getName()
                  + " has length="
                  + n
                  + "; expected "
                  + (parent < 0 ? "" : "at least ")
                  + wanted
                  + (parent < 0 ? " (the batch's row count)" : " (its parent's)"));
        }
        List<BufferType> types = schema.bufferTypes(i);
        boolean variableData = types.contains(BufferType.OFFSET);
        for (int j = 0; j < types.size(); j++) {
          int b = schema.nodeBufferStart(i) + j;
          rb.buffers(buf, b);
          long off = buf.offset();
          long len = buf.length();
          if (off < 0 || len < 0 || off > bodyLength - len) {
            throw new DatasetFormatException(
                file,
                offset,
                what
                    + " buffer #"
                    + b
                    + " [offset="
                    + off
                    + ", length="
                    + len
                    + ") lies outside the body of "
                    + bodyLength
                    + " bytes");
          }
          long need =
              minBufferBytes(types.get(j), schema.bufferBitWidth(i, j), variableData, n, nulls);
          if (len < need) {
            throw new DatasetFormatException(
                file,
                offset,
                what
                    + " field "
                    + field.getName()
                    + " "
                    + types.get(j)
                    + " buffer has "
                    + len
                    + " bytes; "
                    + n
                    + " values need at least "
                    + need);
          }
        }
      }
      return (int) rows;
    } catch (DatasetFormatException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new DatasetFormatException(
          file, offset, what + " metadata is not a valid flatbuffer: " + e, e);
    }
  }

  /**
   * The length a child node must at least have given its parent's, or -1 when only the data can
   * tell (a list's offsets say).
   */
  private static long childLength(Field parent, long parentLength) {
    ArrowType t = parent.getType();
    return switch (t.getTypeID()) {
      case Struct -> parentLength;
      case FixedSizeList -> {
        long size = ((ArrowType.FixedSizeList) t).getListSize();
        long n = size == 0 ? 0 : parentLength * size;
        // Past int range the child cannot exist: ask for more than any node may have.
        yield size != 0 && n / size != parentLength || n > Integer.MAX_VALUE
            ? (long) Integer.MAX_VALUE + 1
            : n;
      }
      default -> -1;
    };
  }

  /**
   * Bytes a buffer must have to hold {@code n} values; 0 where the data decides. Fixed-width data
   * must be there even when every value is null (the format requires it, and it is what bounds a
   * batch's row count by its bytes); a validity bitmap may be left out when no value or every value
   * is null, as writers do and Arrow Java accepts.
   */
  private static long minBufferBytes(
      BufferType type, long bitWidth, boolean variableData, long n, long nulls) {
    if (type == BufferType.VALIDITY) {
      // Arrow Java makes its own validity bits when none or all values are null.
      return nulls > 0 && nulls < n ? (n + 7) / 8 : 0;
    }
    if (type == BufferType.OFFSET) {
      return n == 0 ? 0 : (n + 1) * (bitWidth / 8);
    }
    if (type == BufferType.DATA && !variableData) {
      return (n * bitWidth + 7) / 8;
    }
    return 0;
  }
}
