package io.sluice.format.arrow;

import io.sluice.format.DatasetFormatException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.arrow.flatbuf.Endianness;
import org.apache.arrow.flatbuf.KeyValue;
import org.apache.arrow.flatbuf.Type;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BufferLayout;
import org.apache.arrow.vector.BufferLayout.BufferType;
import org.apache.arrow.vector.TypeLayout;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.Types;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A schema the {@code arrow} format serves, with the record-batch layout it implies: the fields in
 * the pre-order IPC walks them (one field node each) and the buffers each takes. Immutable.
 *
 * <p>Accepted: the primitive, temporal, binary/string (small and large), list (small, large, fixed
 * size), struct and map types. Refused with a message: dictionary-encoded fields, unions, view
 * types, run-end encoding, a column named {@code sample_id}, duplicate column names.
 */
final class IpcSchema {
  /** The daemon's own column; a file column of that name would shadow it. */
  static final String SAMPLE_ID = "sample_id";

  /** Deepest nesting accepted: real schemas are a few levels deep; this stops cyclic metadata. */
  private static final int MAX_DEPTH = 64;

  private final Schema schema;
  private final List<Field> flat = new ArrayList<>();
  private final List<Integer> flatParent = new ArrayList<>();
  private final List<Integer> flatBufferStart = new ArrayList<>();
  private final List<List<BufferType>> flatBufferTypes = new ArrayList<>();
  private final List<long[]> flatBitWidths = new ArrayList<>();
  private final int[] columnNodeStart;
  private final int[] columnBufferStart;
  private int bufferCount;

  private IpcSchema(Schema schema) {
    this.schema = schema;
    int columns = schema.getFields().size();
    columnNodeStart = new int[columns + 1];
    columnBufferStart = new int[columns + 1];
    for (int c = 0; c < columns; c++) {
      columnNodeStart[c] = flat.size();
      columnBufferStart[c] = bufferCount;
      flatten(schema.getFields().get(c), -1);
    }
    columnNodeStart[columns] = flat.size();
    columnBufferStart[columns] = bufferCount;
  }

  private void flatten(Field f, int parent) {
    int self = flat.size();
    flat.add(f);
    flatParent.add(parent);
    flatBufferStart.add(bufferCount);
    List<BufferLayout> layouts = TypeLayout.getTypeLayout(f.getType()).getBufferLayouts();
    long[] widths = new long[layouts.size()];
    for (int j = 0; j < widths.length; j++) {
      // BufferLayout keeps the width in a short: a fixed-size binary over 4 KiB would wrap.
      widths[j] =
          f.getType() instanceof ArrowType.FixedSizeBinary fsb
                  && layouts.get(j).getType() == BufferType.DATA
              ? fsb.getByteWidth() * 8L
              : layouts.get(j).getTypeBitWidth();
    }
    flatBufferTypes.add(layouts.stream().map(BufferLayout::getType).toList());
    flatBitWidths.add(widths);
    bufferCount += layouts.size();
    for (Field child : f.getChildren()) {
      flatten(child, self);
    }
  }

  /**
   * The served form of a file's schema (fields only: schema-level metadata such as pandas' is
   * dropped, since it describes the file, not the served batches), after checking Sluice can serve
   * it.
   */
  static IpcSchema of(Schema fileSchema, Path file, long offset) {
    List<Field> fields = fileSchema.getFields();
    if (fields.isEmpty()) {
      throw new DatasetFormatException(file, offset, "schema has no columns");
    }
    Set<String> names = new HashSet<>();
    for (Field f : fields) {
      if (SAMPLE_ID.equals(f.getName())) {
        throw new DatasetFormatException(
            file,
            offset,
            "column 'sample_id' clashes with the column the daemon adds (the global sample index);"
                + " rename it in the files");
      }
      if (!names.add(f.getName())) {
        throw new DatasetFormatException(
            file, offset, "column name '" + f.getName() + "' appears twice; names must be unique");
      }
      checkField(f, f.getName(), 0, file, offset);
    }
    Schema served = new Schema(fields);
    // Arrow Java refuses some shapes only when it builds the vectors (a map whose entries are
    // nullable, say); build them once here, so the daemon never meets that per request.
    try (BufferAllocator none = new RootAllocator(0);
        VectorSchemaRoot probe = VectorSchemaRoot.create(served, none)) {
      probe.getRowCount();
    } catch (RuntimeException e) {
      throw new DatasetFormatException(
          file, offset, "schema " + brief(served) + " is not usable in Arrow Java: " + e, e);
    }
    return new IpcSchema(served);
  }

  private static void checkField(Field f, String path, int depth, Path file, long offset) {
    if (depth > MAX_DEPTH) {
      throw new DatasetFormatException(
          file, offset, "field " + path + " is nested deeper than " + MAX_DEPTH + " levels");
    }
    if (f.getDictionary() != null) {
      throw new DatasetFormatException(
          file,
          offset,
          "field "
              + path
              + " is dictionary-encoded, which the arrow format does not serve; decode it before"
              + " writing (pyarrow: column.dictionary_decode())");
    }
    ArrowType t = f.getType();
    int children = f.getChildren().size();
    String bad =
        switch (t.getTypeID()) {
          case Null,
              FloatingPoint,
              Bool,
              Utf8,
              LargeUtf8,
              Binary,
              LargeBinary,
              Date,
              Timestamp,
              Interval,
              Duration,
              Time ->
              children == 0 ? null : "a leaf type with children";
          case Int -> {
            int w = ((ArrowType.Int) t).getBitWidth();
            yield w == 8 || w == 16 || w == 32 || w == 64 ? null : "int bit_width=" + w;
          }
          case FixedSizeBinary -> {
            int w = ((ArrowType.FixedSizeBinary) t).getByteWidth();
            yield w >= 1 && w <= Integer.MAX_VALUE / 8 ? null : "byte_width=" + w;
          }
          case Decimal -> {
            int w = ((ArrowType.Decimal) t).getBitWidth();
            yield w == 128 || w == 256 ? null : "decimal bit_width=" + w + " (128 or 256 served)";
          }
          case List, LargeList -> children == 1 ? null : "a list with " + children + " children";
          case FixedSizeList ->
              children != 1
                  ? "a fixed-size list with " + children + " children"
                  : ((ArrowType.FixedSizeList) t).getListSize() < 1
                      // Arrow Java grows a list_size=0 vector without end when copying into it.
                      ? "list_size="
                          + ((ArrowType.FixedSizeList) t).getListSize()
                          + " (>= 1 served)"
                      : null;
          case Struct -> null;
          case Map ->
              children == 1
                      && !f.getChildren().get(0).isNullable()
                      && f.getChildren().get(0).getChildren().size() == 2
                  ? null
                  : "a map whose entries are not a non-nullable struct of key and value";
          default ->
              "type "
                  + t
                  + ", which the arrow format does not serve (unions, view and run-end encoded"
                  + " types are not supported)";
        };
    if (bad != null) {
      throw new DatasetFormatException(file, offset, "field " + path + ": " + bad);
    }
    try {
      Types.getMinorTypeForArrowType(t);
      TypeLayout.getTypeLayout(t);
    } catch (RuntimeException e) {
      throw new DatasetFormatException(
          file, offset, "field " + path + " has type " + t + " that Arrow Java cannot lay out", e);
    }
    for (Field c : f.getChildren()) {
      checkField(c, path + "." + c.getName(), depth + 1, file, offset);
    }
  }

  /**
   * Converts a schema flatbuffer after bounding its shape, so metadata that reuses tables (a cycle
   * or a fan-out) fails here instead of recursing without end or building millions of fields.
   *
   * @param metadataBytes the size of the buffer the flatbuffer lives in
   */
  static Schema convert(
      org.apache.arrow.flatbuf.Schema fb, int metadataBytes, Path file, long offset) {
    try {
      if (fb.endianness() != Endianness.Little) {
        throw new DatasetFormatException(
            file, offset, "schema is big-endian; only little-endian Arrow data is served");
      }
      ShapeBudget budget = new ShapeBudget(metadataBytes, file, offset);
      budget.metadata(fb.customMetadataLength(), null, fb);
      int n = fb.fieldsLength();
      budget.fields(n);
      for (int i = 0; i < n; i++) {
        walk(fb.fields(i), 1, budget);
      }
      return Schema.convertSchema(fb);
    } catch (DatasetFormatException e) {
      throw e;
    } catch (RuntimeException | StackOverflowError e) {
      throw new DatasetFormatException(file, offset, "schema metadata does not parse: " + e, e);
    }
  }

  private static void walk(org.apache.arrow.flatbuf.Field f, int depth, ShapeBudget budget) {
    if (f == null) {
      throw budget.fail("a schema field table is missing");
    }
    if (depth > MAX_DEPTH) {
      throw budget.fail("schema fields nest deeper than " + MAX_DEPTH + " levels");
    }
    budget.string(f.nameAsByteBuffer());
    budget.metadata(f.customMetadataLength(), f, null);
    if (f.typeType() == Type.Union) {
      org.apache.arrow.flatbuf.Union u =
          (org.apache.arrow.flatbuf.Union) f.type(new org.apache.arrow.flatbuf.Union());
      if (u != null) {
        budget.fields(u.typeIdsLength());
        if (u.typeIdsLength() > 0) {
          budget.string(u.typeIdsAsByteBuffer());
        }
      }
    }
    int n = f.childrenLength();
    budget.fields(n);
    for (int i = 0; i < n; i++) {
      walk(f.children(i), depth + 1, budget);
    }
  }

  /** Totals a schema walk may reach: each bounded by the bytes the metadata has. */
  private static final class ShapeBudget {
    private final long maxItems;
    private final long maxStringBytes;
    private final Path file;
    private final long offset;
    private long items;
    private long stringBytes;

    ShapeBudget(int metadataBytes, Path file, long offset) {
      // A field or key-value pair takes well over 8 bytes of metadata and each string is stored
      // once, so a walk that counts more has met the same tables again (shared or cyclic).
      this.maxItems = metadataBytes / 8L + 16;
      this.maxStringBytes = metadataBytes + 4096L;
      this.file = file;
      this.offset = offset;
    }

    void fields(int n) {
      if (n < 0 || (items += n) > maxItems) {
        throw fail(
            "schema metadata lists more fields than its "
                + (maxItems - 16) * 8
                + " bytes can hold");
      }
    }

    /** Counts a string's or vector's bytes; flatbuffers returns null for an absent one. */
    void string(ByteBuffer b) {
      if (b != null && (stringBytes += b.remaining()) > maxStringBytes) {
        throw fail("schema metadata holds more string bytes than its size allows");
      }
    }

    void metadata(int n, org.apache.arrow.flatbuf.Field f, org.apache.arrow.flatbuf.Schema s) {
      fields(n);
      KeyValue kv = new KeyValue();
      for (int i = 0; i < n; i++) {
        KeyValue e = f != null ? f.customMetadata(kv, i) : s.customMetadata(kv, i);
        if (e != null) {
          string(e.keyAsByteBuffer());
          string(e.valueAsByteBuffer());
        }
      }
    }

    DatasetFormatException fail(String what) {
      return new DatasetFormatException(file, offset, what);
    }
  }

  Schema schema() {
    return schema;
  }

  int columnCount() {
    return columnNodeStart.length - 1;
  }

  /** Field nodes a record batch of this schema carries. */
  int nodeCount() {
    return flat.size();
  }

  /** Buffers a record batch of this schema carries. */
  int bufferCount() {
    return bufferCount;
  }

  Field node(int i) {
    return flat.get(i);
  }

  /** The node index of node {@code i}'s parent, or -1 for a top-level column. */
  int parent(int i) {
    return flatParent.get(i);
  }

  int nodeBufferStart(int i) {
    return flatBufferStart.get(i);
  }

  int columnNodeStart(int c) {
    return columnNodeStart[c];
  }

  int columnNodeEnd(int c) {
    return columnNodeStart[c + 1];
  }

  int columnBufferStart(int c) {
    return columnBufferStart[c];
  }

  int columnBufferEnd(int c) {
    return columnBufferStart[c + 1];
  }

  /** The buffer types of node {@code i}, in IPC order. */
  List<BufferType> bufferTypes(int i) {
    return flatBufferTypes.get(i);
  }

  /** Bits per value of node {@code i}'s buffer {@code j} (its layout's, widened). */
  long bufferBitWidth(int i, int j) {
    return flatBitWidths.get(i)[j];
  }

  /** A short form of the schema for error messages. */
  static String brief(Schema s) {
    String text = s.getFields().toString();
    return text.length() <= 400 ? text : text.substring(0, 400) + "...";
  }
}
