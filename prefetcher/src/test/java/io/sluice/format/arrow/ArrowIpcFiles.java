package io.sluice.format.arrow;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.LargeVarCharVector;
import org.apache.arrow.vector.TimeStampMicroTZVector;
import org.apache.arrow.vector.UInt1Vector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.compare.Range;
import org.apache.arrow.vector.compare.RangeEqualsVisitor;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.MapVector;
import org.apache.arrow.vector.complex.StructVector;
import org.apache.arrow.vector.complex.impl.NullableStructWriter;
import org.apache.arrow.vector.complex.impl.UnionListWriter;
import org.apache.arrow.vector.complex.impl.UnionMapWriter;
import org.apache.arrow.vector.compression.AbstractCompressionCodec;
import org.apache.arrow.vector.compression.CompressionCodec;
import org.apache.arrow.vector.compression.CompressionUtil;
import org.apache.arrow.vector.dictionary.DictionaryProvider;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.ipc.ArrowWriter;
import org.apache.arrow.vector.ipc.message.IpcOption;
import org.apache.arrow.vector.types.DateUnit;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.MetadataVersion;
import org.apache.arrow.vector.types.TimeUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The tests' Arrow IPC writer: shards whose row values are a known function of the global row
 * index, written with Arrow Java's own file and stream writers (and the pre-0.15 legacy stream
 * framing), so every served row can be checked.
 */
public final class ArrowIpcFiles {
  private ArrowIpcFiles() {}

  /** How a shard is framed. */
  public enum Framing {
    FILE,
    STREAM,
    /** Stream without the 0xFFFFFFFF continuation markers and with V4 metadata. */
    LEGACY_STREAM
  }

  /** A column: its field and how row {@code row}'s value is written at vector index {@code i}. */
  public record Column(Field field, Setter setter) {}

  @FunctionalInterface
  public interface Setter {
    void set(FieldVector v, int i, long row);
  }

  static Field field(String name, ArrowType type, boolean nullable, Field... children) {
    return new Field(name, new FieldType(nullable, type, null), List.of(children));
  }

  static final Column ID =
      new Column(
          field("id", new ArrowType.Int(64, true), false),
          (v, i, r) -> ((BigIntVector) v).setSafe(i, r * 7 - 3));

  /** Nullable: every fifth row is null. */
  static final Column SCORE =
      new Column(
          field("score", new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE), true),
          (v, i, r) -> {
            if (r % 5 == 3) {
              ((Float4Vector) v).setNull(i);
            } else {
              ((Float4Vector) v).setSafe(i, r * 0.5f);
            }
          });

  static final Column TEXT =
      new Column(
          field("text", ArrowType.Utf8.INSTANCE, true),
          (v, i, r) -> {
            if (r % 11 == 4) {
              ((VarCharVector) v).setNull(i);
            } else {
              ((VarCharVector) v).setSafe(i, utf8("row-" + r + "é".repeat((int) (r % 7))));
            }
          });

  static final Column BLOB =
      new Column(
          field("blob", ArrowType.Binary.INSTANCE, false),
          (v, i, r) -> {
            byte[] b = new byte[(int) (r % 13)];
            for (int j = 0; j < b.length; j++) {
              b[j] = (byte) (r + j * 31);
            }
            ((VarBinaryVector) v).setSafe(i, b);
          });

  static final Column INTS =
      new Column(
          field(
              "ints",
              ArrowType.List.INSTANCE,
              true,
              field("item", new ArrowType.Int(32, true), true)),
          (v, i, r) -> {
            ListVector l = (ListVector) v;
            if (r % 9 == 2) {
              l.setNull(i);
              return;
            }
            UnionListWriter w = l.getWriter();
            w.setPosition(i);
            w.startList();
            for (int j = 0; j < r % 4; j++) {
              w.writeInt((int) (r + j));
            }
            w.endList();
          });

  static final Column WIDE_TEXT =
      new Column(
          field("large", ArrowType.LargeUtf8.INSTANCE, false),
          (v, i, r) -> ((LargeVarCharVector) v).setSafe(i, utf8("L" + r)));

  static final Column FLAG =
      new Column(
          field("flag", ArrowType.Bool.INSTANCE, false),
          (v, i, r) -> ((BitVector) v).setSafe(i, r % 3 == 0 ? 1 : 0));

  static final Column BYTE =
      new Column(
          field("u8", new ArrowType.Int(8, false), false),
          (v, i, r) -> ((UInt1Vector) v).setSafe(i, (int) (r & 0xFF)));

  static final Column TRIPLE =
      new Column(
          field("fsb", new ArrowType.FixedSizeBinary(3), false),
          (v, i, r) ->
              ((FixedSizeBinaryVector) v)
                  .setSafe(i, new byte[] {(byte) r, (byte) (r >> 8), (byte) (r >> 16)}));

  static final Column PAIR =
      new Column(
          field(
              "vec",
              new ArrowType.FixedSizeList(2),
              false,
              field("item", new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE), false)),
          (v, i, r) -> {
            FixedSizeListVector f = (FixedSizeListVector) v;
            Float8Vector data = (Float8Vector) f.getDataVector();
            f.setNotNull(i);
            data.setSafe(i * 2, r);
            data.setSafe(i * 2 + 1, -r);
          });

  static final Column STRUCT =
      new Column(
          field(
              "st",
              ArrowType.Struct.INSTANCE,
              false,
              field("a", new ArrowType.Int(32, true), false),
              field("b", ArrowType.Utf8.INSTANCE, true)),
          (v, i, r) -> {
            NullableStructWriter w = ((StructVector) v).getWriter();
            w.setPosition(i);
            w.start();
            w.integer("a").writeInt((int) r);
            w.varChar("b").writeVarChar("s" + r);
            w.end();
          });

  static final Column MAP =
      new Column(
          field(
              "m",
              new ArrowType.Map(false),
              true,
              field(
                  "entries",
                  ArrowType.Struct.INSTANCE,
                  false,
                  field("key", ArrowType.Utf8.INSTANCE, false),
                  field("value", new ArrowType.Int(64, true), true))),
          (v, i, r) -> {
            UnionMapWriter w = ((MapVector) v).getWriter();
            w.setPosition(i);
            w.startMap();
            for (int j = 0; j < r % 3; j++) {
              w.startEntry();
              w.key().varChar().writeVarChar("k" + j);
              w.value().bigInt().writeBigInt(r * 10 + j);
              w.endEntry();
            }
            w.endMap();
          });

  static final Column DECIMAL =
      new Column(
          field("dec", new ArrowType.Decimal(10, 2, 128), false),
          (v, i, r) -> ((DecimalVector) v).setSafe(i, BigDecimal.valueOf(r * 3 - 100, 2)));

  static final Column DAY =
      new Column(
          field("day", new ArrowType.Date(DateUnit.DAY), false),
          (v, i, r) -> ((DateDayVector) v).setSafe(i, (int) r));

  static final Column TIME =
      new Column(
          field("ts", new ArrowType.Timestamp(TimeUnit.MICROSECOND, "UTC"), true),
          (v, i, r) -> ((TimeStampMicroTZVector) v).setSafe(i, r * 1_000_003L));

  /** The columns the pyarrow round trip also uses. */
  public static final List<Column> SMALL = List.of(ID, SCORE, TEXT, BLOB, INTS);

  /** Every type the format claims to serve, nested ones included. */
  public static final List<Column> WIDE =
      List.of(
          ID, SCORE, TEXT, BLOB, INTS, WIDE_TEXT, FLAG, BYTE, TRIPLE, PAIR, STRUCT, MAP, DECIMAL,
          DAY, TIME);

  static Schema schema(List<Column> columns) {
    return new Schema(columns.stream().map(Column::field).toList());
  }

  static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Sets rows {@code firstRow..firstRow+rows-1} into {@code root}, which has the columns. */
  static void fill(VectorSchemaRoot root, List<Column> columns, long firstRow, int rows) {
    root.allocateNew();
    for (int c = 0; c < columns.size(); c++) {
      FieldVector v = root.getVector(c);
      for (int i = 0; i < rows; i++) {
        columns.get(c).setter().set(v, i, firstRow + i);
      }
    }
    root.setRowCount(rows);
  }

  /**
   * Writes a shard holding rows {@code firstRow..} in record batches of {@code batchRows} rows each
   * (zero allowed).
   */
  public static void write(
      Path path,
      List<Column> columns,
      Framing framing,
      long firstRow,
      BufferAllocator allocator,
      int... batchRows)
      throws IOException {
    write(path, schema(columns), columns, framing, firstRow, allocator, null, batchRows);
  }

  /** As above, with a schema (field metadata, dictionaries) and a compression codec factory. */
  static void write(
      Path path,
      Schema schema,
      List<Column> columns,
      Framing framing,
      long firstRow,
      BufferAllocator allocator,
      CompressionCodec.Factory codec,
      int... batchRows)
      throws IOException {
    try (VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
        FileChannel ch =
            FileChannel.open(
                path,
                StandardOpenOption.CREATE,
                StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
      DictionaryProvider none = new DictionaryProvider.MapDictionaryProvider();
      IpcOption legacy = new IpcOption(true, MetadataVersion.V4);
      CompressionCodec.Factory factory = codec == null ? CompressionCodec.Factory.INSTANCE : codec;
      CompressionUtil.CodecType type =
          codec == null
              ? CompressionUtil.CodecType.NO_COMPRESSION
              : CompressionUtil.CodecType.LZ4_FRAME;
      try (ArrowWriter w =
          switch (framing) {
            case FILE ->
                new ArrowFileWriter(root, none, ch, Map.of(), IpcOption.DEFAULT, factory, type);
            case STREAM -> new ArrowStreamWriter(root, none, ch, IpcOption.DEFAULT, factory, type);
            case LEGACY_STREAM -> new ArrowStreamWriter(root, none, ch, legacy, factory, type);
          }) {
        w.start();
        long row = firstRow;
        for (int rows : batchRows) {
          fill(root, columns, row, rows);
          w.writeBatch();
          row += rows;
        }
        w.end();
      }
    }
  }

  /** A one-row root holding row {@code row}; the caller closes it. */
  static VectorSchemaRoot expected(List<Column> columns, long row, BufferAllocator allocator) {
    VectorSchemaRoot root = VectorSchemaRoot.create(schema(columns), allocator);
    fill(root, columns, row, 1);
    return root;
  }

  /**
   * Asserts row {@code i} of every column of {@code out} that {@code columns} names holds global
   * row {@code row}.
   */
  static void assertRow(
      VectorSchemaRoot out, int i, List<Column> columns, long row, BufferAllocator allocator) {
    try (VectorSchemaRoot want = expected(columns, row, allocator)) {
      for (int c = 0; c < columns.size(); c++) {
        FieldVector got = out.getVector(columns.get(c).field().getName());
        if (got == null) {
          continue;
        }
        FieldVector exp = want.getVector(c);
        assertTrue(
            new RangeEqualsVisitor(got, exp).rangeEquals(new Range(i, 0, 1)),
            () ->
                "row "
                    + row
                    + " column "
                    + exp.getName()
                    + ": got "
                    + got.getObject(i)
                    + ", want "
                    + exp.getObject(0));
      }
    }
  }

  /**
   * A stand-in LZ4 codec that stores buffers uncompressed with the "not compressed" marker the
   * format allows, so a file carries a real BodyCompression without an LZ4 library.
   */
  static final class FakeLz4 extends AbstractCompressionCodec implements CompressionCodec.Factory {
    @Override
    protected ArrowBuf doCompress(BufferAllocator allocator, ArrowBuf uncompressed) {
      // Longer than the input, so the writer ships the raw bytes instead.
      long n = CompressionUtil.SIZE_OF_UNCOMPRESSED_LENGTH + uncompressed.writerIndex() + 8;
      ArrowBuf b = allocator.buffer(n);
      b.writerIndex(n);
      return b;
    }

    @Override
    protected ArrowBuf doDecompress(BufferAllocator allocator, ArrowBuf compressed) {
      throw new UnsupportedOperationException();
    }

    @Override
    public CompressionUtil.CodecType getCodecType() {
      return CompressionUtil.CodecType.LZ4_FRAME;
    }

    @Override
    public CompressionCodec createCodec(CompressionUtil.CodecType codecType) {
      return this;
    }

    @Override
    public CompressionCodec createCodec(CompressionUtil.CodecType codecType, int level) {
      return this;
    }
  }
}
