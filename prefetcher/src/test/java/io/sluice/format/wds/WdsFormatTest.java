package io.sluice.format.wds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.format.wds.WdsReader.Sample;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WdsFormatTest {
  @TempDir Path dir;

  private final WdsFormat wds = new WdsFormat();
  private final Random random = new Random(42);
  private final List<Sample> expected = new ArrayList<>();

  private byte[] bytes(int n) {
    byte[] b = new byte[n];
    random.nextBytes(b);
    return b;
  }

  /** Adds a member to the archive and to the expected samples. */
  private long add(TarWriter w, String key, String ext, byte[] data) {
    if (expected.isEmpty() || !expected.getLast().key().equals(key)) {
      expected.add(new Sample(key, new LinkedHashMap<>()));
    }
    expected.getLast().members().put(ext, data);
    return w.file(key + "." + ext, data);
  }

  /**
   * Three shards, one per tar dialect, covering: nested directories and their entries, names with
   * several dots, a sample missing an extension, empty and block-sized members, long names by ustar
   * prefix, GNU 'L' and pax 'path', pax sizes, base-256 sizes, signed checksums, symlinks, members
   * without an extension, a pax global header.
   */
  private void writeDataset() throws IOException {
    TarWriter a = new TarWriter().style(TarWriter.Style.USTAR);
    a.dir("train");
    a.dir("train/part0");
    add(a, "train/part0/s0", "jpg", bytes(1000));
    add(a, "train/part0/s0", "cls", "7".getBytes(StandardCharsets.UTF_8));
    add(a, "train/part0/s0", "seg.png", bytes(512));
    add(a, "train/part0/s1", "jpg", bytes(0)); // empty member, no cls: null there
    add(a, "train/part0/s1", "seg.png", bytes(513));
    String deep = "train/" + "d".repeat(90) + "/" + "n".repeat(60) + "/s2";
    add(a, deep, "jpg", bytes(77)); // 166 bytes: needs ustar's prefix field
    add(a, deep, "cls", bytes(3));
    a.symlink("train/link.jpg", "part0/s0.jpg");
    a.file("train/README", bytes(10)); // no extension: skipped
    a.writeTo(dir.resolve("a-ustar.tar"));

    TarWriter b = new TarWriter().style(TarWriter.Style.GNU).base256Size(true);
    // long name by GNU 'L'; key ".../sample", extension "with.dots.v1.json"
    add(b, "val/" + "x".repeat(150) + "/sample", "with.dots.v1.json", bytes(33));
    add(b, "val/s3", "jpg", bytes(4096));
    add(b, "val/s3", "cls", bytes(1));
    b.writeTo(dir.resolve("b-gnu.tar"));

    TarWriter c = new TarWriter().style(TarWriter.Style.PAX).paxSize(true).signedChecksum(true);
    c.paxGlobal(new String(TarWriter.paxRecord("comment", "ignored"), StandardCharsets.UTF_8));
    add(c, "test/" + "p".repeat(200) + "/é", "jpg", bytes(600)); // pax path, non-ASCII
    add(c, "test/s4", "cls", bytes(2)); // only cls
    add(c, "test/s5", "jpg", bytes(5));
    add(c, "test/s5", "cls", bytes(5));
    add(c, "test/s5", "seg.png", bytes(5));
    c.writeTo(dir.resolve("c-pax.tar"));
  }

  private SampleSource open(PosixReadBackend posix) throws IOException {
    return Formats.open(dir, posix);
  }

  private long[] ids(int from, int to) {
    long[] r = new long[to - from];
    for (int i = from; i < to; i++) {
      r[i - from] = i;
    }
    return r;
  }

  @Test
  void readsEverySampleExactlyFromUstarGnuAndPaxShards() throws IOException {
    writeDataset();
    IndexReport r = wds.index(dir, Map.of(), IndexProgress.NONE);
    assertFalse(r.reused());
    assertEquals(3, r.manifest().shards().size());
    assertEquals(
        List.of(3L, 2L, 3L), r.manifest().shards().stream().map(s -> s.samples()).toList());
    assertEquals("cls,jpg,seg.png,with.dots.v1.json", r.manifest().param("extensions"));
    assertEquals("a-ustar.tar.sluice-idx", r.manifest().shards().get(0).companions().get(0).path());
    assertTrue(
        r.notes().stream().anyMatch(n -> n.contains("a-ustar.tar: skipped 1 members without")),
        r.notes().toString());
    assertEquals(8, expected.size());
    try (RootAllocator alloc = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = open(posix)) {
      assertEquals(
          List.of("__key__", "cls", "jpg", "seg.png", "with.dots.v1.json"),
          src.schema().getFields().stream().map(Field::getName).toList());
      assertFalse(src.schema().findField("__key__").isNullable());
      assertTrue(src.schema().findField("jpg").isNullable());
      assertEquals(expected, WdsReader.read(src, alloc, ids(0, 8)));
      // shuffled, with repeats, across shards
      List<Long> order = new ArrayList<>();
      for (long i = 0; i < 8; i++) {
        order.add(i);
        order.add(7 - i);
      }
      Collections.shuffle(order, random);
      long[] shuffled = order.stream().mapToLong(Long::longValue).toArray();
      List<Sample> got = WdsReader.read(src, alloc, shuffled);
      for (int i = 0; i < shuffled.length; i++) {
        assertEquals(expected.get((int) shuffled[i]), got.get(i), "row " + i);
      }
      assertEquals(List.of(), WdsReader.read(src, alloc, new long[0]));
      assertThrows(
          IllegalArgumentException.class, () -> WdsReader.read(src, alloc, new long[] {8}));
    }
  }

  @Test
  void fillsOnlyTheColumnsTheRootHas() throws IOException {
    writeDataset();
    wds.index(dir, Map.of(), IndexProgress.NONE);
    try (RootAllocator alloc = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = open(posix)) {
      Schema onlyJpg = new Schema(List.of(src.schema().findField("jpg")));
      List<Sample> got = WdsReader.read(src, alloc, ids(0, 8), onlyJpg);
      for (int i = 0; i < 8; i++) {
        assertNull(got.get(i).key());
        byte[] jpg = expected.get(i).members().get("jpg");
        assertEquals(
            jpg == null ? java.util.Set.of() : java.util.Set.of("jpg"),
            got.get(i).members().keySet());
        if (jpg != null) {
          assertTrue(java.util.Arrays.equals(jpg, got.get(i).members().get("jpg")));
        }
      }
    }
  }

  @Test
  void concurrentFillsFromManyThreadsAgree() throws Exception {
    writeDataset();
    wds.index(dir, Map.of(), IndexProgress.NONE);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try (RootAllocator alloc = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = open(posix)) {
      List<Future<?>> done = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        long seed = t;
        done.add(
            pool.submit(
                () -> {
                  Random r = new Random(seed);
                  for (int k = 0; k < 50; k++) {
                    long[] batch = new long[1 + r.nextInt(12)];
                    for (int i = 0; i < batch.length; i++) {
                      batch[i] = r.nextInt(8);
                    }
                    List<Sample> got = WdsReader.read(src, alloc, batch);
                    for (int i = 0; i < batch.length; i++) {
                      assertEquals(expected.get((int) batch[i]), got.get(i));
                    }
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

  // ---- bad input ---------------------------------------------------------------------------

  private DatasetFormatException indexFails() {
    return assertThrows(
        DatasetFormatException.class, () -> wds.index(dir, Map.of(), IndexProgress.NONE));
  }

  private static void assertNames(DatasetFormatException e, Path file, long offset, String... has) {
    assertEquals(file, e.file(), e.getMessage());
    assertEquals(offset, e.offset(), e.getMessage());
    assertTrue(
        e.getMessage().startsWith("file=" + file + " offset=" + offset + ": "), e.getMessage());
    for (String s : has) {
      assertTrue(e.getMessage().contains(s), e.getMessage());
    }
  }

  @Test
  void badChecksumNamesTheHeaderAndBothSums() throws IOException {
    TarWriter w = new TarWriter();
    w.file("a.jpg", bytes(10));
    long second = w.file("b.jpg", bytes(10));
    byte[] tar = w.bytes(true);
    tar[(int) second + 20] ^= 1; // a byte of the name, checksum not updated
    Path p = Files.write(dir.resolve("x.tar"), tar);
    DatasetFormatException e = indexFails();
    assertNames(e, p, second, "header checksum=", "stored chksum=");
  }

  @Test
  void signedChecksumsAreAcceptedLikeTarDoes() throws IOException {
    TarWriter w = new TarWriter().signedChecksum(true);
    add(w, "é/ü", "txt", bytes(3)); // bytes >= 0x80: signed and unsigned sums differ
    w.writeTo(dir.resolve("x.tar"));
    wds.index(dir, Map.of(), IndexProgress.NONE);
    try (RootAllocator alloc = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = open(posix)) {
      assertEquals(expected, WdsReader.read(src, alloc, ids(0, 1)));
    }
  }

  @Test
  void sizeRunningPastTheEndNamesTheHeader() throws IOException {
    TarWriter w = new TarWriter();
    w.file("a.jpg", bytes(10));
    long at = w.file("b.jpg", bytes(2000));
    byte[] tar = w.bytes(false);
    Path p = Files.write(dir.resolve("x.tar"), java.util.Arrays.copyOf(tar, (int) at + 512 + 1024));
    assertNames(indexFails(), p, at, "size=2000", "truncated");
  }

  @Test
  void extremeSizeFieldsAreRefusedNotAllocated() throws IOException {
    TarWriter w = new TarWriter().base256Size(true);
    long at = w.file("a.jpg", bytes(10));
    byte[] tar = w.bytes(true);
    for (int i = 125; i < 136; i++) {
      tar[(int) at + i] = (byte) 0xFF; // base-256: about 2^86
    }
    byte[] h = java.util.Arrays.copyOfRange(tar, (int) at, (int) at + 512);
    TarWriter.setChecksum(h, false);
    System.arraycopy(h, 0, tar, (int) at, 512);
    Path p = Files.write(dir.resolve("x.tar"), tar);
    assertNames(indexFails(), p, at + 124, "base-256");
    h[124] = (byte) 0xFF; // negative
    TarWriter.setChecksum(h, false);
    System.arraycopy(h, 0, tar, (int) at, 512);
    Files.write(p, tar);
    assertNames(indexFails(), p, at + 124, "negative");
    System.arraycopy("77777777777\0".getBytes(StandardCharsets.US_ASCII), 0, h, 124, 12);
    TarWriter.setChecksum(h, false);
    System.arraycopy(h, 0, tar, (int) at, 512);
    Files.write(p, tar);
    assertNames(indexFails(), p, at, "size=8589934591");
    System.arraycopy("0000000009x\0".getBytes(StandardCharsets.US_ASCII), 0, h, 124, 12);
    TarWriter.setChecksum(h, false);
    System.arraycopy(h, 0, tar, (int) at, 512);
    Files.write(p, tar);
    assertNames(indexFails(), p, at + 124, "an octal size field");
  }

  @Test
  void truncatedHeaderAndTruncatedPaddingNameTheirOffsets() throws IOException {
    TarWriter w = new TarWriter();
    w.file("a.jpg", bytes(10));
    long second = w.file("b.jpg", bytes(10));
    byte[] tar = w.bytes(false);
    Path p = Files.write(dir.resolve("x.tar"), java.util.Arrays.copyOf(tar, (int) second + 100));
    assertNames(indexFails(), p, second, "a 512-byte header, found 100 bytes", "truncated");
    Files.write(p, java.util.Arrays.copyOf(tar, (int) second + 512 + 10));
    assertNames(indexFails(), p, second + 512 + 10, "padding");
  }

  @Test
  void endOfFileOnABlockBoundaryEndsTheArchive() throws IOException {
    TarWriter w = new TarWriter();
    add(w, "a", "jpg", bytes(10));
    add(w, "b", "jpg", bytes(600));
    Files.write(dir.resolve("x.tar"), w.bytes(false)); // no end-of-archive blocks
    assertEquals(2, wds.index(dir, Map.of(), IndexProgress.NONE).manifest().totalSamples());
    byte[] withJunk = w.bytes(true);
    withJunk = java.util.Arrays.copyOf(withJunk, withJunk.length + 700); // junk after the end
    withJunk[withJunk.length - 1] = 1;
    Files.write(dir.resolve("x.tar"), withJunk);
    assertEquals(2, wds.index(dir, Map.of(), IndexProgress.NONE).manifest().totalSamples());
  }

  @Test
  void twoMembersWithOneExtensionInOneSampleNameKeyAndOffset() throws IOException {
    TarWriter w = new TarWriter();
    w.file("dir/k.jpg", bytes(10));
    w.file("dir/k.cls", bytes(1));
    long second = w.file("dir/k.jpg", bytes(10));
    Path p = w.writeTo(dir.resolve("x.tar"));
    assertNames(indexFails(), p, second, "key=dir/k", "extension=jpg", "offset 0");
  }

  @Test
  void longNameAndPaxHeaderProblemsNameTheirOffsets() throws IOException {
    Path p = dir.resolve("x.tar");
    TarWriter big = new TarWriter().style(TarWriter.Style.GNU);
    big.file("n".repeat(TarScanner.MAX_EXTENDED_BYTES + 1) + ".jpg", bytes(1));
    big.writeTo(p);
    assertNames(indexFails(), p, 0, "long-name/pax header of at most");

    TarWriter dangling = new TarWriter().style(TarWriter.Style.PAX);
    dangling.file("q".repeat(120) + ".jpg", bytes(1));
    byte[] tar = dangling.bytes(false);
    Files.write(p, java.util.Arrays.copyOf(tar, 1024)); // the pax header and its data, no member
    assertNames(indexFails(), p, 0, "a member after this long-name/pax header");

    TarWriter badPax = new TarWriter().style(TarWriter.Style.PAX);
    badPax.file("q".repeat(120) + ".jpg", bytes(1));
    tar = badPax.bytes(true);
    tar[512] = 'z'; // the record length's first digit
    Files.write(p, tar);
    assertNames(indexFails(), p, 512, "pax record");
  }

  @Test
  void reservedExtensionsAndNonUtf8NamesAreRefused() throws IOException {
    Path p = dir.resolve("x.tar");
    TarWriter w = new TarWriter();
    w.file("a.jpg", bytes(1));
    long at = w.file("a.__key__", bytes(1));
    w.writeTo(p);
    assertNames(indexFails(), p, at, "__key__");
    TarWriter u = new TarWriter();
    long bad = u.file("a\u00ff.jpg", bytes(1));
    byte[] tar = u.bytes(true);
    byte[] h = java.util.Arrays.copyOfRange(tar, (int) bad, (int) bad + 512);
    h[1] = (byte) 0xFF; // invalid UTF-8
    h[2] = (byte) 0xFE;
    TarWriter.setChecksum(h, false);
    System.arraycopy(h, 0, tar, (int) bad, 512);
    Files.write(p, tar);
    assertNames(indexFails(), p, bad, "UTF-8");
  }

  @Test
  void unknownOptionsEmptyFoldersAndSampleFreeShardsAreRefused() throws IOException {
    IllegalArgumentException opt =
        assertThrows(
            IllegalArgumentException.class,
            () -> wds.index(dir, Map.of("seq_len", "4"), IndexProgress.NONE));
    assertTrue(opt.getMessage().contains("seq_len"), opt.getMessage());
    assertTrue(indexFails().getMessage().contains("*.tar"));
    TarWriter w = new TarWriter();
    w.dir("d");
    w.file("d/README", bytes(3));
    w.writeTo(dir.resolve("x.tar"));
    assertTrue(indexFails().getMessage().contains("at least one sample"));
  }

  // ---- changes after indexing and re-indexing ------------------------------------------------

  private static void touch(Path p, long plusMs) throws IOException {
    Files.setLastModifiedTime(
        p, FileTime.fromMillis(Files.getLastModifiedTime(p).toMillis() + plusMs));
  }

  @Test
  void aChangedTarOrIndexIsRefusedNotServed() throws IOException {
    writeDataset();
    wds.index(dir, Map.of(), IndexProgress.NONE);
    Path tar = dir.resolve("b-gnu.tar");
    touch(tar, 5000);
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e = assertThrows(DatasetFormatException.class, () -> open(posix));
      assertEquals(tar, e.file());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
    wds.index(dir, Map.of(), IndexProgress.NONE);
    Path idx = dir.resolve("c-pax.tar.sluice-idx");
    touch(idx, 5000);
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e = assertThrows(DatasetFormatException.class, () -> open(posix));
      assertEquals(idx, e.file());
    }
  }

  @Test
  void aDamagedIndexIsRefusedAtOpenAndRebuiltByIndexing() throws IOException {
    writeDataset();
    wds.index(dir, Map.of(), IndexProgress.NONE);
    Path idx = dir.resolve("a-ustar.tar.sluice-idx");
    FileTime mtime = Files.getLastModifiedTime(idx);
    byte[] b = Files.readAllBytes(idx);
    b[b.length - 1] ^= 0x20; // a key byte
    Files.write(idx, b);
    Files.setLastModifiedTime(idx, mtime); // the manifest's stamp cannot see it; the CRC does
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e = assertThrows(DatasetFormatException.class, () -> open(posix));
      assertNames(e, idx, ShardIndexFile.CRC_OFFSET, "crc32c");
    }
    b[8] = 9; // version 9: checked before the CRC
    Files.write(idx, b);
    Files.setLastModifiedTime(idx, mtime);
    try (PosixReadBackend posix = new PosixReadBackend()) {
      assertNames(
          assertThrows(DatasetFormatException.class, () -> open(posix)), idx, 8, "version=1");
    }
    IndexReport r = wds.index(dir, Map.of(), IndexProgress.NONE);
    assertTrue(
        r.notes().stream().anyMatch(n -> n.startsWith("rebuilt file=" + idx)),
        r.notes().toString());
    try (RootAllocator alloc = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = open(posix)) {
      assertEquals(expected, WdsReader.read(src, alloc, ids(0, 8)));
    }
  }

  @Test
  void reindexingReusesUnchangedShardsAndRescansChangedOnes() throws IOException {
    writeDataset();
    assertFalse(wds.index(dir, Map.of(), IndexProgress.NONE).reused());
    Path idxA = dir.resolve("a-ustar.tar.sluice-idx");
    Path idxC = dir.resolve("c-pax.tar.sluice-idx");
    FileTime old = FileTime.fromMillis(1_000_000_000_000L);
    Files.setLastModifiedTime(idxA, old);
    Files.setLastModifiedTime(idxC, old);
    assertFalse(wds.index(dir, Map.of(), IndexProgress.NONE).reused()); // idx stamps changed
    IndexReport again = wds.index(dir, Map.of(), IndexProgress.NONE);
    assertTrue(again.reused());
    assertEquals(Manifest.read(dir), again.manifest());
    assertEquals(old, Files.getLastModifiedTime(idxA)); // not rewritten
    // Change shard c: one more sample. Only c is rescanned.
    TarWriter c = new TarWriter().style(TarWriter.Style.PAX);
    add(c, "z/s9", "npy", bytes(9));
    c.writeTo(dir.resolve("c-pax.tar"));
    touch(dir.resolve("c-pax.tar"), 3000);
    List<Integer> progress = new ArrayList<>();
    IndexReport r = wds.index(dir, Map.of(), (done, total, bytes) -> progress.add(done));
    assertFalse(r.reused());
    assertEquals(List.of(1, 2, 3), progress);
    assertEquals(old, Files.getLastModifiedTime(idxA));
    assertNotEquals(old, Files.getLastModifiedTime(idxC));
    assertEquals(6, r.manifest().totalSamples());
    assertEquals("cls,jpg,npy,seg.png,with.dots.v1.json", r.manifest().param("extensions"));
  }

  @Test
  void aTarTruncatedAfterOpenFailsTheReadNamingFileAndOffset() throws IOException {
    writeDataset();
    wds.index(dir, Map.of(), IndexProgress.NONE);
    Path tar = dir.resolve("b-gnu.tar");
    try (RootAllocator alloc = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = open(posix)) {
      try (FileChannel ch = FileChannel.open(tar, StandardOpenOption.WRITE)) {
        ch.truncate(2048);
      }
      DatasetFormatException e =
          assertThrows(DatasetFormatException.class, () -> WdsReader.read(src, alloc, ids(4, 5)));
      assertEquals(tar, e.file());
      assertTrue(e.getMessage().contains("key=val/s3"), e.getMessage());
      assertTrue(e.offset() > 2048 - 512, e.getMessage());
    }
  }

  @Test
  void extensionListRoundTripsThroughTheManifestParameter() {
    List<String> odd = List.of("a%b", "c,d", "e%2Cf", "plain");
    String joined = WdsFormat.joinExtensions(odd);
    assertEquals(odd, WdsFormat.splitExtensions(joined));
    assertNull(WdsFormat.splitExtensions(""));
    assertNull(WdsFormat.splitExtensions("a,,b"));
  }
}
