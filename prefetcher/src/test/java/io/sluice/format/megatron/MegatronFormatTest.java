package io.sluice.format.megatron;

import static io.sluice.format.megatron.MegatronWriter.patchByte;
import static io.sluice.format.megatron.MegatronWriter.patchInt;
import static io.sluice.format.megatron.MegatronWriter.patchLong;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.util.ValueVectorUtility;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class MegatronFormatTest {
  private static final MegatronFormat FORMAT = new MegatronFormat();

  @TempDir Path dir;
  private BufferAllocator allocator;

  @BeforeEach
  void allocator() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void noLeaks() {
    allocator.close(); // fails the test if any buffer is still held
  }

  private static IndexReport index(Path dir) throws IOException {
    return FORMAT.index(dir, Map.of(), IndexProgress.NONE);
  }

  /** Two shards written in reverse name order; sequences of shard "a" come first. */
  private List<byte[]> twoShards(MegatronDtype dtype, long seed) throws IOException {
    Random rnd = new Random(seed);
    List<byte[]> b = MegatronWriter.randomSequences(rnd, dtype, 13, 40);
    List<byte[]> a = MegatronWriter.randomSequences(rnd, dtype, 21, 40);
    MegatronWriter.write(dir, "shard-b", dtype, b);
    MegatronWriter.write(dir, "shard-a", dtype, a);
    List<byte[]> all = new ArrayList<>(a);
    all.addAll(b);
    return all;
  }

  /** Reads {@code ids} in batches of {@code batch} and checks each row's bytes. */
  static void readAndCheck(
      SampleSource source, BufferAllocator allocator, List<byte[]> expected, long[] ids, int batch)
      throws IOException {
    int item = ((MegatronSource) source).dtype().itemSizeBytes();
    for (int from = 0; from < ids.length; from += batch) {
      int count = Math.min(batch, ids.length - from);
      long[] chunk = new long[count];
      System.arraycopy(ids, from, chunk, 0, count);
      try (VectorSchemaRoot root = VectorSchemaRoot.create(source.schema(), allocator)) {
        source.fill(chunk, count, root);
        root.setRowCount(count);
        ListVector tokens = (ListVector) root.getVector(MegatronSource.TOKENS_COLUMN);
        ValueVectorUtility.validateFull(tokens);
        BaseFixedWidthVector data = (BaseFixedWidthVector) tokens.getDataVector();
        for (int r = 0; r < count; r++) {
          int start = tokens.getElementStartIndex(r);
          int end = tokens.getElementEndIndex(r);
          byte[] got = new byte[(end - start) * item];
          data.getDataBuffer().getBytes((long) start * item, got);
          assertArrayEquals(expected.get((int) chunk[r]), got, "sample_id=" + chunk[r]);
        }
      }
    }
  }

  private static long[] shuffledIds(int n, long seed) {
    List<Long> ids = new ArrayList<>();
    for (long i = 0; i < n; i++) {
      ids.add(i);
    }
    Collections.shuffle(ids, new Random(seed));
    return ids.stream().mapToLong(Long::longValue).toArray();
  }

  @ParameterizedTest
  @EnumSource(MegatronDtype.class)
  void readsEverySequenceExactlyForEveryDtype(MegatronDtype dtype) throws IOException {
    List<byte[]> expected = twoShards(dtype, dtype.code());
    Files.writeString(dir.resolve("README.txt"), "not a shard");
    IndexReport r = index(dir);
    assertFalse(r.reused());
    Manifest m = r.manifest();
    assertEquals(
        List.of("shard-a.bin", "shard-b.bin"), m.shards().stream().map(s -> s.path()).toList());
    assertEquals("shard-a.idx", m.shards().get(0).companions().get(0).path());
    assertEquals(34, m.totalSamples());
    assertEquals(Map.of("dtype", dtype.wireName()), m.params());
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource source = Formats.open(dir, posix)) {
      Field tokens = source.schema().findField("tokens");
      assertEquals(ArrowType.List.INSTANCE, tokens.getType());
      assertFalse(tokens.isNullable());
      assertEquals(dtype.arrowType(), tokens.getChildren().get(0).getType());
      assertEquals(1, source.schema().getFields().size());
      readAndCheck(source, allocator, expected, shuffledIds(34, 7), 8);
      readAndCheck(source, allocator, expected, new long[] {2, 7, 2}, 3); // zero-length rows
      readAndCheck(source, allocator, expected, new long[0], 1);
    }
  }

  @Test
  void concurrentFillsFromManyThreadsReadTheSameBytes() throws Exception {
    List<byte[]> expected = twoShards(MegatronDtype.UINT16, 11);
    index(dir);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource source = Formats.open(dir, posix)) {
      List<Future<?>> done = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        long seed = t;
        done.add(
            pool.submit(
                () -> {
                  readAndCheck(source, allocator, expected, shuffledIds(34, seed), 5);
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
  void reindexingAnUnchangedFolderReusesTheManifest() throws IOException {
    twoShards(MegatronDtype.INT32, 3);
    Manifest first = index(dir).manifest();
    FileTime written = Files.getLastModifiedTime(dir.resolve(Manifest.FILE_NAME));
    IndexReport again = index(dir);
    assertTrue(again.reused());
    assertEquals(first, again.manifest());
    assertEquals(written, Files.getLastModifiedTime(dir.resolve(Manifest.FILE_NAME)));
  }

  @Test
  void reindexingSkipsTheScanOfShardsWhoseStampsAreUnchanged() throws IOException {
    twoShards(MegatronDtype.INT32, 3);
    index(dir);
    // Damage shard-b.idx's first document index in place, then restore its mtime: its stamp is
    // what the manifest recorded, so a re-index trusts the earlier full check and does not rescan.
    Path idx = dir.resolve("shard-b.idx");
    FileTime mtime = Files.getLastModifiedTime(idx);
    patchLong(idx, 34 + 12 * 13, -1);
    Files.setLastModifiedTime(idx, mtime);
    MegatronWriter.write(
        dir, "shard-c", MegatronDtype.INT32, List.of(new byte[8], new byte[0], new byte[4]));
    IndexReport r = index(dir);
    assertFalse(r.reused()); // shard-c is new
    assertEquals(37, r.manifest().totalSamples());
    // Once its stamp moves on, the same damage is found.
    MegatronWriter.bumpMtime(idx);
    assertBad(idx, 34 + 12 * 13, "document=0 index=-1 must be in [0, 13]");
  }

  @Test
  void changedShardOrIdxAfterIndexingIsRefusedNotServed() throws IOException {
    twoShards(MegatronDtype.UINT8, 5);
    index(dir);
    Path idx = dir.resolve("shard-a.idx");
    MegatronWriter.bumpMtime(idx);
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e =
          assertThrows(DatasetFormatException.class, () -> Formats.open(dir, posix));
      assertEquals(idx, e.file());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
      index(dir);
      Path bin = dir.resolve("shard-b.bin");
      Files.write(bin, new byte[7], StandardOpenOption.APPEND);
      e = assertThrows(DatasetFormatException.class, () -> Formats.open(dir, posix));
      assertEquals(bin, e.file());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
  }

  @Test
  void binTruncatedAfterOpenFailsTheFillNamingTheBinAndOffset() throws IOException {
    List<byte[]> seqs = List.of(new byte[10], new byte[6], new byte[20]);
    MegatronWriter.write(dir, "a", MegatronDtype.INT16, seqs);
    index(dir);
    Path bin = dir.resolve("a.bin");
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource source = Formats.open(dir, posix)) {
      try (FileChannel ch = FileChannel.open(bin, StandardOpenOption.WRITE)) {
        ch.truncate(20);
      }
      readAndCheck(source, allocator, seqs, new long[] {0, 1}, 2);
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class,
              () -> readAndCheck(source, allocator, seqs, new long[] {1, 2}, 2));
      assertEquals(bin, e.file());
      assertEquals(16, e.offset());
      assertTrue(e.getMessage().contains("file=" + bin + " offset=16"), e.getMessage());
    }
  }

  @Test
  void idxRewrittenInPlaceAfterOpenFailsTheFillNamingTheIdxEntry() throws IOException {
    List<byte[]> seqs = List.of(new byte[10], new byte[6], new byte[20]);
    MegatronWriter.write(dir, "a", MegatronDtype.INT16, seqs);
    index(dir);
    Path idx = dir.resolve("a.idx");
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource source = Formats.open(dir, posix)) {
      patchInt(idx, 34 + 4, -3); // the mapping shows writes to the file
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class,
              () -> readAndCheck(source, allocator, seqs, new long[] {1}, 1));
      assertEquals(idx, e.file());
      assertEquals(38, e.offset());
      patchInt(idx, 34 + 4, 3);
      patchLong(idx, 34 + 12 + 8 * 2, 30);
      e =
          assertThrows(
              DatasetFormatException.class,
              () -> readAndCheck(source, allocator, seqs, new long[] {0, 2}, 2));
      assertEquals(idx, e.file());
      assertEquals(34 + 12 + 16, e.offset());
      assertTrue(e.getMessage().contains("a.bin length_bytes=36"), e.getMessage());
    }
  }

  @Test
  void idxTruncatedWhileMappedFailsTheFillNotTheJvm() throws IOException {
    List<byte[]> seqs = new ArrayList<>();
    for (int i = 0; i < 2000; i++) {
      seqs.add(new byte[2]);
    }
    MegatronWriter.write(dir, "a", MegatronDtype.INT16, seqs); // a.idx spans several pages
    index(dir);
    Path idx = dir.resolve("a.idx");
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource source = Formats.open(dir, posix)) {
      try (FileChannel ch = FileChannel.open(idx, StandardOpenOption.WRITE)) {
        ch.truncate(100);
      }
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class,
              () -> readAndCheck(source, allocator, seqs, new long[] {1999}, 1));
      assertEquals(idx, e.file());
      assertTrue(e.getMessage().contains("shrank while open"), e.getMessage());
    }
  }

  // ---- bad input at index time: each names the file, the offset and what was expected ----

  private void assertBad(Path file, long offset, String expected) {
    DatasetFormatException e = assertThrows(DatasetFormatException.class, () -> index(dir));
    assertEquals(file, e.file(), e.getMessage());
    assertEquals(offset, e.offset(), e.getMessage());
    String where = "file=" + file + (offset >= 0 ? " offset=" + offset : "") + ": ";
    assertTrue(e.getMessage().startsWith(where), e.getMessage());
    assertTrue(e.getMessage().contains(expected), e.getMessage());
  }

  /** a.bin/a.idx: int32 sequences of 3, 0 and 5 elements (n=3, 2 documents + end = d=3). */
  private Path smallIdx() throws IOException {
    MegatronWriter.write(
        dir, "a", MegatronDtype.INT32, List.of(new byte[12], new byte[0], new byte[20]));
    return dir.resolve("a.idx");
  }

  @Test
  void badMagic() throws IOException {
    Path idx = smallIdx();
    patchByte(idx, 3, 'X');
    assertBad(idx, 0, "magic MMIDIDX\\x00\\x00 expected");
  }

  @Test
  void shorterThanTheHeader() throws IOException {
    smallIdx();
    Path idx = dir.resolve("a.idx");
    Files.write(idx, new byte[] {'M', 'M', 'I', 'D'});
    assertBad(idx, 4, "34-byte header");
  }

  @Test
  void unsupportedVersion() throws IOException {
    Path idx = smallIdx();
    patchLong(idx, 9, 2);
    assertBad(idx, 9, "version=2 is not supported (expected 1)");
  }

  @Test
  void unknownDtypeCodes() throws IOException {
    Path idx = smallIdx();
    patchByte(idx, 17, 0);
    assertBad(idx, 17, "dtype code=0 must be one of 1=uint8");
    patchByte(idx, 17, 9);
    assertBad(idx, 17, "dtype code=9");
  }

  @Test
  void sequenceCountPastTheFile() throws IOException {
    Path idx = smallIdx();
    patchLong(idx, 18, Long.MAX_VALUE);
    assertBad(idx, 18, "sequence count=9223372036854775807 needs");
    patchLong(idx, 18, -1);
    assertBad(idx, 18, "sequence count=18446744073709551615");
  }

  @Test
  void documentCountPastTheFile() throws IOException {
    Path idx = smallIdx();
    patchLong(idx, 26, 1L << 61);
    assertBad(idx, 26, "document count=2305843009213693952 is past any file length");
  }

  @Test
  void countsThatDoNotMatchTheLengthExactly() throws IOException {
    Path idx = smallIdx(); // 34 + 36 + 24 = 94 bytes
    patchLong(idx, 26, 4);
    assertBad(idx, 94, "length_bytes=94 expected exactly 102");
    assertBad(idx, 94, "truncated");
    patchLong(idx, 26, 3);
    Files.write(idx, new byte[3], StandardOpenOption.APPEND);
    assertBad(idx, 94, "length_bytes=97 expected exactly 94");
    assertBad(idx, 94, "3 trailing bytes");
  }

  @Test
  void multimodalSequenceModesAreNamed() throws IOException {
    Path idx = smallIdx();
    Files.write(idx, new byte[3], StandardOpenOption.APPEND); // int8 modes[n]
    assertBad(idx, 94, "multimodal");
  }

  @Test
  void negativeLength() throws IOException {
    Path idx = smallIdx();
    patchInt(idx, 34 + 8, -1);
    assertBad(idx, 42, "sequence=2 length=-1 must be >= 0");
  }

  @Test
  void negativePointer() throws IOException {
    Path idx = smallIdx();
    patchLong(idx, 34 + 12 + 8, Long.MIN_VALUE);
    assertBad(idx, 54, "sequence=1 pointer=-9223372036854775808");
  }

  @Test
  void pointerPastTheBinNamesTheIdxEntryAndTheBinLength() throws IOException {
    Path idx = smallIdx(); // a.bin is 32 bytes; sequence 2 is 5 x 4 bytes at 12
    patchLong(idx, 34 + 12 + 16, 13);
    assertBad(
        idx,
        62,
        "sequence=2 pointer=13 length=5 x itemsize=4 must lie within a.bin length_bytes=32");
    patchLong(idx, 34 + 12 + 16, Long.MAX_VALUE);
    assertBad(idx, 62, "a.bin length_bytes=32");
    patchLong(idx, 34 + 12 + 16, 12);
    patchInt(idx, 34 + 8, Integer.MAX_VALUE);
    assertBad(idx, 62, "length=2147483647 x itemsize=4");
  }

  @Test
  void documentIndicesMustNotDecreaseNorPassTheSequenceCount() throws IOException {
    Path idx = smallIdx(); // documents [0, 2, 3] at 70
    patchLong(idx, 70 + 8, 4);
    assertBad(idx, 78, "document=1 index=4 must be in [0, 3]");
    patchLong(idx, 70 + 8, 2);
    patchLong(idx, 70 + 16, 1);
    assertBad(idx, 86, "document=2 index=1 must be in [2, 3]");
  }

  @Test
  void binWithoutIdxAndIdxWithoutBin() throws IOException {
    smallIdx();
    Path lonelyBin = dir.resolve("b.bin");
    Files.write(lonelyBin, new byte[4]);
    assertBad(lonelyBin, -1, "no b.idx beside it");
    Files.delete(lonelyBin);
    Path lonelyIdx = dir.resolve("0.idx");
    Files.copy(dir.resolve("a.idx"), lonelyIdx);
    assertBad(lonelyIdx, -1, "no 0.bin beside it");
  }

  @Test
  void shardsOfDifferentDtypesNameTheFileAndBothDtypes() throws IOException {
    MegatronWriter.write(dir, "a", MegatronDtype.UINT16, List.of(new byte[4]));
    MegatronWriter.write(dir, "b", MegatronDtype.INT32, List.of(new byte[4]));
    assertBad(dir.resolve("b.idx"), 17, "dtype=int32 differs from dtype=uint16 of a.idx");
  }

  @Test
  void emptyFolderAndNoSequencesAreRefused() throws IOException {
    assertBad(dir, -1, "no NAME.bin + NAME.idx pairs");
    MegatronWriter.write(dir, "a", MegatronDtype.UINT16, List.of());
    assertBad(dir, -1, "every .idx has sequence count 0");
  }

  @Test
  void unknownOptionsAreRejectedByName() throws IOException {
    smallIdx();
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> FORMAT.index(dir, Map.of("seq_len", "8"), IndexProgress.NONE));
    assertTrue(e.getMessage().contains("seq_len"), e.getMessage());
  }
}
