package io.sluice.format.arrow;

import static io.sluice.format.arrow.ArrowIpcFiles.Framing.FILE;
import static io.sluice.format.arrow.ArrowIpcFiles.Framing.LEGACY_STREAM;
import static io.sluice.format.arrow.ArrowIpcFiles.Framing.STREAM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.FileStamp;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.SampleSource;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.UInt8Vector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.dictionary.Dictionary;
import org.apache.arrow.vector.dictionary.DictionaryProvider;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.ipc.ArrowWriter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.DictionaryEncoding;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ArrowIpcFormatTest {
  private static final List<ArrowIpcFiles.Column> WIDE = ArrowIpcFiles.WIDE;

  @TempDir Path dir;
  private BufferAllocator allocator;
  private final ArrowIpcFormat format = new ArrowIpcFormat();

  @BeforeEach
  void allocate() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void closeAllocatorFailingOnLeaks() {
    allocator.close();
  }

  /** Three shards, one per framing, 25 rows; an empty batch in the first. */
  private void threeShards() throws IOException {
    ArrowIpcFiles.write(dir.resolve("a.arrow"), WIDE, FILE, 0, allocator, 5, 0, 7);
    ArrowIpcFiles.write(dir.resolve("b.ipc"), WIDE, STREAM, 12, allocator, 4, 6);
    ArrowIpcFiles.write(dir.resolve("c.arrows"), WIDE, LEGACY_STREAM, 22, allocator, 3);
  }

  private IndexReport index() throws IOException {
    return format.index(dir, Map.of(), IndexProgress.NONE);
  }

  private Schema rootSchema(List<Field> dataFields) {
    List<Field> fields = new ArrayList<>();
    fields.add(new Field("sample_id", FieldType.notNullable(new ArrowType.Int(64, false)), null));
    fields.addAll(dataFields);
    return new Schema(fields);
  }

  /** Fills {@code ids} into a root like the daemon's and checks every row. */
  private void fillAndCheck(SampleSource src, long[] ids, List<Field> columns) throws IOException {
    try (VectorSchemaRoot root = VectorSchemaRoot.create(rootSchema(columns), allocator)) {
      src.fill(ids, ids.length, root);
      assertEquals(0, root.getVector("sample_id").getValueCount(), "sample_id is not ours");
      root.setRowCount(ids.length);
      for (int i = 0; i < ids.length; i++) {
        ArrowIpcFiles.assertRow(root, i, WIDE, ids[i], allocator);
      }
    }
  }

  @Test
  void readsEveryRowOfFileStreamAndLegacyShardsExactly() throws IOException {
    threeShards();
    Files.writeString(dir.resolve("notes.txt"), "not a shard");
    List<int[]> progress = new ArrayList<>();
    IndexReport r = format.index(dir, Map.of(), (d, t, b) -> progress.add(new int[] {d, t}));
    assertFalse(r.reused());
    assertEquals(
        List.of(12L, 10L, 3L), r.manifest().shards().stream().map(s -> s.samples()).toList());
    assertEquals("a.arrow", r.manifest().shards().get(0).path());
    assertEquals("a.arrow.sluice-idx", r.manifest().shards().get(0).companions().get(0).path());
    assertEquals(3, progress.size());
    assertEquals(3, progress.get(2)[0]);
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = Formats.open(dir, posix)) {
      assertEquals(ArrowIpcFiles.schema(WIDE), src.schema());
      assertEquals(25, src.layout().totalSamples());
      List<Field> all = src.schema().getFields();
      long[] inOrder = new long[25];
      for (int i = 0; i < 25; i++) {
        inOrder[i] = i;
      }
      fillAndCheck(src, inOrder, all);
      long[] shuffled = inOrder.clone();
      Random rnd = new Random(42);
      for (int i = shuffled.length - 1; i > 0; i--) {
        int j = rnd.nextInt(i + 1);
        long t = shuffled[i];
        shuffled[i] = shuffled[j];
        shuffled[j] = t;
      }
      fillAndCheck(src, shuffled, all);
      fillAndCheck(src, new long[] {24, 0, 24, 13, 0, 5}, all); // repeats, as padding makes
      fillAndCheck(src, new long[] {3, 4, 5, 6}, all); // across the empty batch
      fillAndCheck(src, new long[] {}, all);
    }
  }

  @Test
  void fillsOnlyTheColumnsTheRootHas() throws IOException {
    threeShards();
    index();
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = Formats.open(dir, posix)) {
      List<Field> some = List.of(src.schema().getFields().get(4), src.schema().getFields().get(2));
      fillAndCheck(src, new long[] {20, 1, 7, 22}, some);
      try (VectorSchemaRoot onlyIds = VectorSchemaRoot.create(rootSchema(List.of()), allocator)) {
        src.fill(new long[] {1, 2}, 2, onlyIds);
        assertEquals(0, ((UInt8Vector) onlyIds.getVector(0)).getValueCount());
      }
      assertThrows(
          IllegalArgumentException.class,
          () -> fillAndCheck(src, new long[] {25}, src.schema().getFields()));
    }
  }

  @Test
  void concurrentFillsReturnTheSameRows() throws Exception {
    threeShards();
    index();
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = Formats.open(dir, posix)) {
      List<Future<?>> done = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int seed = t;
        done.add(
            pool.submit(
                () -> {
                  Random rnd = new Random(seed);
                  for (int round = 0; round < 20; round++) {
                    long[] ids = rnd.longs(8, 0, 25).toArray();
                    fillAndCheck(src, ids, src.schema().getFields());
                  }
                  return null;
                }));
      }
      for (Future<?> f : done) {
        f.get();
      }
    } finally {
      pool.shutdown();
    }
  }

  @Test
  void reindexingAnUnchangedFolderReusesManifestAndIndexes() throws IOException {
    threeShards();
    index();
    Path a = dir.resolve("a.arrow");
    Path aIdx = dir.resolve("a.arrow.sluice-idx");
    FileTime aIdxTime = Files.getLastModifiedTime(aIdx);
    assertTrue(index().reused());
    // Damage a's bytes but keep its stamp: an unchanged stamp and index mean no re-scan.
    FileTime aTime = Files.getLastModifiedTime(a);
    overwrite(a, Files.size(a) - 12, new byte[] {1, 2, 3, 4});
    Files.setLastModifiedTime(a, aTime);
    assertTrue(index().reused());
    // A changed shard is re-scanned alone; the others' indexes stay as they were.
    ArrowIpcFiles.write(dir.resolve("b.ipc"), WIDE, STREAM, 12, allocator, 10);
    Files.setLastModifiedTime(dir.resolve("b.ipc"), FileTime.fromMillis(12345));
    IndexReport r = index();
    assertFalse(r.reused());
    assertEquals(25, r.manifest().totalSamples());
    assertEquals(aIdxTime, Files.getLastModifiedTime(aIdx));
    // A damaged index is replaced, not trusted.
    overwrite(aIdx, 20, new byte[] {9});
    Files.setLastModifiedTime(aIdx, aIdxTime);
    DatasetFormatException e =
        assertThrows(DatasetFormatException.class, () -> index()); // a's bytes are damaged
    assertEquals(a, e.file());
  }

  @Test
  void shardChangedAfterIndexingIsRefusedNotServed() throws IOException {
    threeShards();
    index();
    Path b = dir.resolve("b.ipc");
    ArrowIpcFiles.write(b, WIDE, STREAM, 100, allocator, 4, 6);
    Files.setLastModifiedTime(
        b, FileTime.fromMillis(Files.getLastModifiedTime(b).toMillis() + 5000));
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e =
          assertThrows(DatasetFormatException.class, () -> Formats.open(dir, posix));
      assertEquals(b, e.file());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
  }

  @Test
  void damagedIndexWithTheSameStampIsRefusedNamingIndexAndOffset() throws IOException {
    threeShards();
    index();
    Path idx = dir.resolve("b.ipc.sluice-idx");
    FileTime t = Files.getLastModifiedTime(idx);
    overwrite(idx, 60, new byte[] {(byte) 0xAB});
    Files.setLastModifiedTime(idx, t);
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e =
          assertThrows(DatasetFormatException.class, () -> Formats.open(dir, posix));
      assertEquals(idx, e.file());
      assertEquals(Files.size(idx) - 4, e.offset());
      assertTrue(e.getMessage().contains("checksum"), e.getMessage());
    }
  }

  @Test
  void differingSchemaNamesTheFileAndShowsBothSchemas() throws IOException {
    ArrowIpcFiles.write(dir.resolve("a.arrow"), WIDE, FILE, 0, allocator, 3);
    ArrowIpcFiles.write(dir.resolve("b.arrow"), ArrowIpcFiles.SMALL, FILE, 3, allocator, 3);
    DatasetFormatException e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(dir.resolve("b.arrow"), e.file());
    assertTrue(e.offset() > 0, e.getMessage());
    assertTrue(e.getMessage().contains("first shard's (a.arrow)"), e.getMessage());
    assertTrue(e.getMessage().contains("large: LargeUtf8"), e.getMessage());
  }

  @Test
  void sampleIdAndDuplicateColumnsAreRefused() throws IOException {
    ArrowIpcFiles.Column clash =
        new ArrowIpcFiles.Column(
            ArrowIpcFiles.field("sample_id", new ArrowType.Int(64, true), false),
            ArrowIpcFiles.ID.setter());
    Path p = dir.resolve("a.ipc");
    ArrowIpcFiles.write(p, List.of(ArrowIpcFiles.ID, clash), STREAM, 0, allocator, 2);
    DatasetFormatException e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(p, e.file());
    assertEquals(0, e.offset());
    assertTrue(e.getMessage().contains("column 'sample_id' clashes"), e.getMessage());

    ArrowIpcFiles.write(p, List.of(ArrowIpcFiles.ID, ArrowIpcFiles.ID), STREAM, 0, allocator, 2);
    e = assertThrows(DatasetFormatException.class, this::index);
    assertTrue(e.getMessage().contains("'id' appears twice"), e.getMessage());
  }

  @Test
  void dictionaryEncodedColumnsAreRefusedClearly() throws IOException {
    DictionaryEncoding enc = new DictionaryEncoding(7L, false, null);
    Field f = new Field("d", new FieldType(true, new ArrowType.Int(32, true), enc), null);
    for (boolean file : new boolean[] {true, false}) {
      Path p = dir.resolve(file ? "d.arrow" : "d.ipc");
      try (VarCharVector words = new VarCharVector("words", allocator);
          VectorSchemaRoot root = VectorSchemaRoot.create(new Schema(List.of(f)), allocator);
          FileChannel ch =
              FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
        words.allocateNew();
        words.setSafe(0, ArrowIpcFiles.utf8("x"));
        words.setValueCount(1);
        DictionaryProvider.MapDictionaryProvider dicts =
            new DictionaryProvider.MapDictionaryProvider();
        dicts.put(new Dictionary(words, enc));
        try (ArrowWriter w =
            file ? new ArrowFileWriter(root, dicts, ch) : new ArrowStreamWriter(root, dicts, ch)) {
          w.start();
          ((IntVector) root.getVector(0)).setSafe(0, 0);
          root.setRowCount(1);
          w.writeBatch();
          w.end();
        }
      }
      DatasetFormatException e = assertThrows(DatasetFormatException.class, this::index);
      assertEquals(p, e.file());
      assertTrue(e.getMessage().contains("dictionary"), e.getMessage());
      Files.delete(p);
    }
  }

  @Test
  void compressedBatchesAreRefusedSayingHowToRewrite() throws IOException {
    Path p = dir.resolve("z.feather");
    ArrowIpcFiles.write(
        p,
        ArrowIpcFiles.schema(ArrowIpcFiles.SMALL),
        ArrowIpcFiles.SMALL,
        FILE,
        0,
        allocator,
        new ArrowIpcFiles.FakeLz4(),
        4);
    DatasetFormatException e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(p, e.file());
    assertTrue(e.offset() > 8, e.getMessage()); // the first batch, after magic and schema
    assertTrue(e.getMessage().contains("compressed"), e.getMessage());
    assertTrue(e.getMessage().contains("compression='uncompressed'"), e.getMessage());
  }

  @Test
  void truncatedFilesNameFileAndOffset() throws IOException {
    Path f = dir.resolve("a.arrow");
    ArrowIpcFiles.write(f, WIDE, FILE, 0, allocator, 5, 7);
    long len = Files.size(f);
    truncate(f, len - 3);
    DatasetFormatException e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(f, e.file());
    assertEquals(len - 3 - 6, e.offset());
    assertTrue(e.getMessage().contains("no closing ARROW1"), e.getMessage());
    Files.delete(f);

    Path s = dir.resolve("b.ipc");
    ArrowIpcFiles.write(s, WIDE, STREAM, 0, allocator, 5, 7);
    List<Long> starts = messageStarts(s);
    assertEquals(4, starts.size()); // schema, two batches, end of stream
    truncate(s, starts.get(2) + 20); // inside the second batch's metadata
    e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(s, e.file());
    assertEquals(starts.get(2), e.offset());
    assertTrue(e.getMessage().contains("metadata length=1176 runs past"), e.getMessage());
    ArrowIpcFiles.write(s, WIDE, STREAM, 0, allocator, 5, 7);
    truncate(s, starts.get(3) - 8); // inside the second batch's body
    e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(starts.get(2), e.offset());
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void streamWithoutEndMarkerIsReadAndTrailingBytesAreNoted() throws IOException {
    Path s = dir.resolve("b.ipc");
    ArrowIpcFiles.write(s, WIDE, STREAM, 0, allocator, 5, 7);
    truncate(s, Files.size(s) - 8);
    assertEquals(12, index().manifest().totalSamples());
    ArrowIpcFiles.write(s, WIDE, STREAM, 0, allocator, 5, 7);
    Files.write(s, new byte[] {1, 2, 3}, StandardOpenOption.APPEND);
    IndexReport r = index();
    assertEquals(1, r.notes().size());
    assertTrue(
        r.notes().get(0).contains("3 bytes after the end-of-stream marker"), r.notes().get(0));
  }

  @Test
  void featherV1GarbageAndEmptyInputsAreRefused() throws IOException {
    Path v1 = dir.resolve("old.feather");
    Files.write(
        v1, "FEA1\0\0\0\0somethingFEA1".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    DatasetFormatException e = assertThrows(DatasetFormatException.class, this::index);
    assertTrue(e.getMessage().contains("Feather v1"), e.getMessage());
    Files.write(v1, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    e = assertThrows(DatasetFormatException.class, this::index);
    assertEquals(v1, e.file());
    assertEquals(0, e.offset());
    Files.write(v1, new byte[0]);
    e = assertThrows(DatasetFormatException.class, this::index);
    assertTrue(e.getMessage().contains("empty Arrow IPC stream"), e.getMessage());
    Files.delete(v1);

    e = assertThrows(DatasetFormatException.class, this::index);
    assertTrue(e.getMessage().contains("no *.arrow"), e.getMessage());
    ArrowIpcFiles.write(dir.resolve("a.arrow"), WIDE, FILE, 0, allocator, 0, 0);
    e = assertThrows(DatasetFormatException.class, this::index);
    assertTrue(e.getMessage().contains("no rows"), e.getMessage());
    IllegalArgumentException bad =
        assertThrows(
            IllegalArgumentException.class,
            () -> format.index(dir, Map.of("seq_len", "4"), IndexProgress.NONE));
    assertTrue(bad.getMessage().contains("seq_len"), bad.getMessage());
  }

  @Test
  void shardTruncatedAfterOpenFailsTheReadNamingFileAndOffset() throws IOException {
    Path f = dir.resolve("a.arrow");
    ArrowIpcFiles.write(f, WIDE, FILE, 0, allocator, 5, 7);
    index();
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = Formats.open(dir, posix)) {
      truncate(f, 200);
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class,
              () -> fillAndCheck(src, new long[] {6}, src.schema().getFields()));
      assertEquals(f, e.file());
      assertTrue(e.offset() > 200, e.getMessage());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
  }

  @Test
  void indexFileRoundTripsItsSchemaAndBatches() throws IOException {
    Path f = dir.resolve("a.arrow");
    ArrowIpcFiles.write(f, WIDE, FILE, 0, allocator, 5, 0, 7);
    ShardIndex scanned = IpcScanner.scan(f, FileStamp.of(dir, "a.arrow")).index();
    Path idx = IndexFile.of(f);
    IndexFile.write(idx, scanned);
    ShardIndex read = IndexFile.read(idx);
    assertEquals(scanned.schema(), read.schema());
    assertEquals(List.of(5, 0, 7), java.util.Arrays.stream(read.rows()).boxed().toList());
    assertEquals(ShardIndex.Layout.FILE, read.layout());
    assertNotEquals(0, read.offsets()[0]);
  }

  @Test
  void schemasArrowJavaMishandlesAreRefusedAtIndexTime() {
    Path f = dir.resolve("x.arrow");
    Field item = ArrowIpcFiles.field("item", new ArrowType.Int(8, true), false);
    // Arrow Java grows a list_size=0 vector without end when rows are copied into it.
    Field empty = ArrowIpcFiles.field("v", new ArrowType.FixedSizeList(0), false, item);
    // Arrow Java refuses to build a map vector whose entries are nullable.
    Field map =
        ArrowIpcFiles.field(
            "m",
            new ArrowType.Map(false),
            true,
            ArrowIpcFiles.field(
                "entries",
                ArrowType.Struct.INSTANCE,
                true,
                ArrowIpcFiles.field("key", ArrowType.Utf8.INSTANCE, false),
                ArrowIpcFiles.field("value", ArrowType.Utf8.INSTANCE, true)));
    Field union =
        ArrowIpcFiles.field(
            "u",
            new ArrowType.Union(org.apache.arrow.vector.types.UnionMode.Sparse, new int[] {0}),
            true,
            item);
    for (Field bad : List.of(empty, map, union)) {
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class, () -> IpcSchema.of(new Schema(List.of(bad)), f, 9));
      assertEquals(9, e.offset());
      assertTrue(e.getMessage().contains("field " + bad.getName()), e.getMessage());
    }
  }

  @Test
  void schemaFlatbufferThatReusesTablesIsRefusedNotExpanded() {
    // Three levels of structs, each listing the level below 100 times: 10^6 fields from ~3 KB.
    com.google.flatbuffers.FlatBufferBuilder b = new com.google.flatbuffers.FlatBufferBuilder();
    int name = b.createString("x");
    org.apache.arrow.flatbuf.Int.startInt(b);
    org.apache.arrow.flatbuf.Int.addBitWidth(b, 32);
    int intType = org.apache.arrow.flatbuf.Int.endInt(b);
    org.apache.arrow.flatbuf.Field.startField(b);
    org.apache.arrow.flatbuf.Field.addName(b, name);
    org.apache.arrow.flatbuf.Field.addTypeType(b, org.apache.arrow.flatbuf.Type.Int);
    org.apache.arrow.flatbuf.Field.addType(b, intType);
    int level = org.apache.arrow.flatbuf.Field.endField(b);
    for (int depth = 0; depth < 3; depth++) {
      int[] kids = new int[100];
      java.util.Arrays.fill(kids, level);
      int children = org.apache.arrow.flatbuf.Field.createChildrenVector(b, kids);
      org.apache.arrow.flatbuf.Struct_.startStruct_(b);
      int struct = org.apache.arrow.flatbuf.Struct_.endStruct_(b);
      org.apache.arrow.flatbuf.Field.startField(b);
      org.apache.arrow.flatbuf.Field.addName(b, name);
      org.apache.arrow.flatbuf.Field.addTypeType(b, org.apache.arrow.flatbuf.Type.Struct_);
      org.apache.arrow.flatbuf.Field.addType(b, struct);
      org.apache.arrow.flatbuf.Field.addChildren(b, children);
      level = org.apache.arrow.flatbuf.Field.endField(b);
    }
    int fields = org.apache.arrow.flatbuf.Schema.createFieldsVector(b, new int[] {level});
    org.apache.arrow.flatbuf.Schema.startSchema(b);
    org.apache.arrow.flatbuf.Schema.addFields(b, fields);
    b.finish(org.apache.arrow.flatbuf.Schema.endSchema(b));
    ByteBuffer bytes = b.dataBuffer();
    int size = bytes.remaining();
    org.apache.arrow.flatbuf.Schema fb = org.apache.arrow.flatbuf.Schema.getRootAsSchema(bytes);
    Path f = dir.resolve("bomb.arrow");
    DatasetFormatException e =
        assertThrows(DatasetFormatException.class, () -> IpcSchema.convert(fb, size, f, 77));
    assertEquals(f, e.file());
    assertEquals(77, e.offset());
    assertTrue(e.getMessage().contains("more fields than"), e.getMessage());
  }

  /** The offsets at which a stream's messages start (walking the 0xFFFFFFFF-prefixed framing). */
  private static List<Long> messageStarts(Path stream) throws IOException {
    ByteBuffer b =
        ByteBuffer.wrap(Files.readAllBytes(stream)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    List<Long> starts = new ArrayList<>();
    int pos = 0;
    while (pos + 8 <= b.capacity()) {
      starts.add((long) pos);
      int len = b.getInt(pos + 4);
      if (len == 0) {
        break;
      }
      org.apache.arrow.flatbuf.Message m =
          org.apache.arrow.flatbuf.Message.getRootAsMessage(
              b.slice(pos + 8, len).order(java.nio.ByteOrder.LITTLE_ENDIAN));
      pos += 8 + len + (int) m.bodyLength();
    }
    return starts;
  }

  private static void overwrite(Path p, long offset, byte[] bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(bytes), offset);
    }
  }

  private static void truncate(Path p, long length) throws IOException {
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
      ch.truncate(length);
    }
  }
}
