package io.sluice.format.arrow;

import java.util.List;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BufferLayout.BufferType;
import org.apache.arrow.vector.types.pojo.ArrowType;

/**
 * Checks a record batch's offsets buffers in its raw body, before Arrow Java loads it: each starts
 * at 0 or above, never decreases, and ends inside its data buffer (strings, binary) or its child
 * (lists, maps). Loading trusts them: a list whose last offset is 2^31 makes Arrow size its child
 * for 2^31 values. Buffer sizes were already checked ({@link IpcMessages#checkRecordBatch}).
 * Stateless.
 */
final class OffsetsCheck {
  private OffsetsCheck() {}

  /**
   * Checks the offsets of top-level column {@code column} and everything under it.
   *
   * @param body the batch body; buffer offsets are relative to it
   * @return null when they are sound, else what is wrong
   */
  static String check(IpcSchema schema, RecordBatch rb, ArrowBuf body, int column) {
    FieldNode node = new FieldNode();
    Buffer buf = new Buffer();
    for (int i = schema.columnNodeStart(column); i < schema.columnNodeEnd(column); i++) {
      List<BufferType> types = schema.bufferTypes(i);
      int at = types.indexOf(BufferType.OFFSET);
      if (at < 0) {
        continue;
      }
      rb.nodes(node, i);
      int n = (int) node.length();
      if (n == 0) {
        continue;
      }
      long limit;
      if (types.contains(BufferType.DATA)) {
        rb.buffers(buf, schema.nodeBufferStart(i) + types.indexOf(BufferType.DATA));
        limit = buf.length();
      } else {
        rb.nodes(node, i + 1); // a list's or map's child follows it in pre-order
        limit = node.length();
      }
      rb.buffers(buf, schema.nodeBufferStart(i) + at);
      ArrowType.ArrowTypeID id = schema.node(i).getType().getTypeID();
      boolean wide =
          id == ArrowType.ArrowTypeID.LargeUtf8
              || id == ArrowType.ArrowTypeID.LargeBinary
              || id == ArrowType.ArrowTypeID.LargeList;
      long base = buf.offset();
      long prev = wide ? body.getLong(base) : body.getInt(base);
      for (long k = 1; k <= n && prev >= 0; k++) {
        long cur = wide ? body.getLong(base + k * 8) : body.getInt(base + k * 4);
        if (cur < prev) {
          return "field "
              + schema.node(i).getName()
              + " offsets["
              + (k - 1)
              + "]="
              + prev
              + " > offsets["
              + k
              + "]="
              + cur
              + "; offsets never decrease";
        }
        prev = cur;
      }
      if (prev < 0 || prev > limit) {
        return "field "
            + schema.node(i).getName()
            + " offsets reach "
            + prev
            + "; expected 0.."
            + limit
            + (types.contains(BufferType.DATA) ? " (its data bytes)" : " (its child's length)");
      }
    }
    return null;
  }
}
