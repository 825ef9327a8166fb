package io.sluice.format.wds;

import io.sluice.format.SampleSource;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/** Test helper: fills a batch through {@link SampleSource#fill} and turns it back into samples. */
final class WdsReader {
  /** A sample as tests compare it: key and extension to bytes (absent extensions left out). */
  record Sample(String key, Map<String, byte[]> members) {
    @Override
    public boolean equals(Object o) {
      if (!(o instanceof Sample s)
          || !key.equals(s.key)
          || !members.keySet().equals(s.members.keySet())) {
        return false;
      }
      for (var e : members.entrySet()) {
        if (!java.util.Arrays.equals(e.getValue(), s.members.get(e.getKey()))) {
          return false;
        }
      }
      return true;
    }

    @Override
    public int hashCode() {
      return key.hashCode();
    }

    @Override
    public String toString() {
      Map<String, Integer> sizes = new LinkedHashMap<>();
      members.forEach((k, v) -> sizes.put(k, v.length));
      return key + sizes;
    }
  }

  private WdsReader() {}

  static List<Sample> read(SampleSource src, BufferAllocator alloc, long[] ids) throws IOException {
    return read(src, alloc, ids, src.schema());
  }

  /** Fills a root of {@code schema} (a subset of the source's columns) with {@code ids}. */
  static List<Sample> read(SampleSource src, BufferAllocator alloc, long[] ids, Schema schema)
      throws IOException {
    try (VectorSchemaRoot root = VectorSchemaRoot.create(schema, alloc)) {
      src.fill(ids, ids.length, root);
      root.setRowCount(ids.length);
      List<Sample> out = new ArrayList<>();
      for (int i = 0; i < ids.length; i++) {
        String key = null;
        Map<String, byte[]> m = new LinkedHashMap<>();
        for (FieldVector v : root.getFieldVectors()) {
          if (v.getName().equals(WdsFormat.KEY_COLUMN)) {
            key = new String(((VarCharVector) v).get(i), StandardCharsets.UTF_8);
          } else if (!v.isNull(i)) {
            m.put(v.getName(), ((VarBinaryVector) v).get(i));
          }
        }
        out.add(new Sample(key, m));
      }
      return out;
    }
  }
}
