package io.sluice.format.wds;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Property: whatever bytes a tar (or Sluice's own index file) holds, indexing and reading fail only
 * with a {@link DatasetFormatException} (or an IOException naming file and offset), never with an
 * ArrayIndexOutOfBounds, an OutOfMemoryError, an Arrow exception or a hang.
 *
 * <p>Deterministic: mutant {@code i} comes from seed {@code i}. Bounded for CI to 1,500 mutants or
 * 5 seconds; a long run: {@code ./mvnw -B -o -pl prefetcher test -Dtest=WdsFuzzTest
 * -Dsluice.fuzz.iterations=200000} (the time bound is lifted when the property is set).
 */
class WdsFuzzTest {
  private static final String ITERATIONS = "sluice.fuzz.iterations";
  private static final long CI_BUDGET_NS = 5_000_000_000L;

  @TempDir Path dir;

  private final List<byte[]> seeds = new ArrayList<>();

  private void makeSeeds() {
    Random r = new Random(7);
    TarWriter a = new TarWriter();
    a.dir("d");
    a.file("d/s0.jpg", data(r, 700));
    a.file("d/s0.cls", data(r, 1));
    a.file("d/s1.jpg", data(r, 0));
    a.file("d/s1.seg.png", data(r, 512));
    a.symlink("d/l.jpg", "s0.jpg");
    a.file("d/" + "u".repeat(120) + "/s2.jpg", data(r, 30));
    seeds.add(a.bytes(true));
    TarWriter b = new TarWriter().style(TarWriter.Style.GNU).base256Size(true);
    b.file("g/" + "L".repeat(130) + ".txt", data(r, 40));
    b.file("g/s3.txt", data(r, 1025));
    b.file("g/s3.json", data(r, 3));
    seeds.add(b.bytes(true));
    TarWriter c = new TarWriter().style(TarWriter.Style.PAX).paxSize(true).signedChecksum(true);
    c.paxGlobal(new String(TarWriter.paxRecord("comment", "x"), StandardCharsets.UTF_8));
    c.file("p/" + "é".repeat(80) + ".bin", data(r, 100));
    c.file("p/s4.bin", data(r, 9));
    c.file("p/s4.cls", data(r, 2));
    seeds.add(c.bytes(false));
  }

  private static byte[] data(Random r, int n) {
    byte[] b = new byte[n];
    r.nextBytes(b);
    return b;
  }

  @Test
  void malformedTarsAndIndexesFailOnlyWithDatasetFormatException() throws IOException {
    makeSeeds();
    String prop = System.getProperty(ITERATIONS);
    int iterations = prop == null ? 1500 : Integer.parseInt(prop);
    long deadline = prop == null ? System.nanoTime() + CI_BUDGET_NS : Long.MAX_VALUE;
    int ran = 0;
    int indexed = 0;
    int refused = 0;
    try (RootAllocator alloc = new RootAllocator()) {
      for (int i = 0; i < iterations && System.nanoTime() < deadline; i++) {
        Random r = new Random(i);
        byte[] seed = seeds.get(r.nextInt(seeds.size()));
        List<String> log = new ArrayList<>();
        byte[] tar = mutateTar(seed, r, log);
        try {
          if (runOne(tar, r, log, alloc)) {
            indexed++;
          }
        } catch (DatasetFormatException expected) {
          refused++; // the only acceptable outcome besides success
        } catch (IOException e) {
          if (!(e.getMessage() != null
              && e.getMessage().contains("file=")
              && e.getMessage().contains("offset="))) {
            fail(describe(i, log, e));
          }
        } catch (Throwable t) {
          fail(describe(i, log, t));
        }
        ran++;
      }
    }
    System.out.printf(
        "wds fuzz: %d mutants, %d indexed and read, %d refused with DatasetFormatException%n",
        ran, indexed, refused);
    assertTrue(ran >= 100, "only " + ran + " mutants ran");
    assertTrue(indexed > 0, "no mutant indexed: the mutator is too destructive to reach reads");
  }

  private static String describe(int i, List<String> log, Throwable t) {
    StringWriter s = new StringWriter();
    t.printStackTrace(new PrintWriter(s));
    return "mutant seed=" + i + " " + log + " threw " + s;
  }

  /** Indexes and reads one mutant; true when indexing succeeded. */
  private boolean runOne(byte[] tar, Random r, List<String> log, RootAllocator alloc)
      throws IOException {
    Path t = dir.resolve("shard.tar");
    Path idx = dir.resolve("shard.tar" + ShardIndexFile.SUFFIX);
    Files.deleteIfExists(idx);
    Files.deleteIfExists(dir.resolve(Manifest.FILE_NAME));
    Files.write(t, tar);
    new WdsFormat().index(dir, Map.of(), IndexProgress.NONE);
    if (r.nextInt(3) == 0) {
      FileTime mtime = Files.getLastModifiedTime(idx);
      Files.write(idx, mutateIndex(Files.readAllBytes(idx), r, log));
      Files.setLastModifiedTime(idx, mtime); // get past the manifest's stamp check
    }
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = Formats.open(dir, posix)) {
      long n = src.layout().totalSamples();
      long[] all = new long[(int) n];
      for (int i = 0; i < n; i++) {
        all[i] = i;
      }
      WdsReader.read(src, alloc, all);
      WdsReader.read(src, alloc, new long[] {n - 1, 0});
    }
    return true;
  }

  // ---- mutators -----------------------------------------------------------------------------

  private static final String[] SIZE_FIELDS = {
    "77777777777\0",
    "00000000000\0",
    "7777777777777",
    "99999999999\0",
    "-1\0",
    " 1 2\0",
    "\0\0\0\0",
  };
  private static final byte[] TYPES = {'0', 0, '1', '2', '5', '7', 'L', 'K', 'x', 'g', 'S', 'V'};

  private static byte[] mutateTar(byte[] seed, Random r, List<String> log) {
    byte[] b = seed.clone();
    int blocks = Math.max(1, b.length / 512);
    int rounds = 1 + r.nextInt(3);
    for (int k = 0; k < rounds; k++) {
      int h = 512 * r.nextInt(blocks); // a block, often a header
      switch (r.nextInt(9)) {
        case 0 -> { // flip bits
          int n = 1 + r.nextInt(8);
          for (int j = 0; j < n && b.length > 0; j++) {
            int at = r.nextInt(b.length);
            b[at] ^= (byte) (1 << r.nextInt(8));
          }
          log.add("flip" + n);
        }
        case 1 -> { // truncate, often near a block boundary
          int len = r.nextBoolean() ? r.nextInt(b.length + 1) : Math.max(0, h + r.nextInt(3) - 1);
          b = Arrays.copyOf(b, Math.min(len, b.length));
          blocks = Math.max(1, b.length / 512);
          log.add("truncate" + len);
        }
        case 2 -> { // extend with zeros or junk
          int n = r.nextInt(1500);
          int old = b.length;
          b = Arrays.copyOf(b, old + n);
          if (r.nextBoolean()) {
            for (int j = old; j < b.length; j++) {
              b[j] = (byte) r.nextInt();
            }
          }
          log.add("extend" + n);
        }
        case 3 -> { // extreme octal size
          String v = SIZE_FIELDS[r.nextInt(SIZE_FIELDS.length)];
          put(b, h + 124, v.getBytes(StandardCharsets.ISO_8859_1));
          log.add("size@" + h + "=" + v.replace("\0", "\\0"));
        }
        case 4 -> { // extreme base-256 size
          byte[] v = new byte[12];
          r.nextBytes(v);
          v[0] = (byte) (r.nextBoolean() ? 0x80 : 0xFF);
          if (r.nextBoolean()) {
            Arrays.fill(v, 1, 12, (byte) (r.nextBoolean() ? 0xFF : 0));
          }
          put(b, h + 124, v);
          log.add("b256@" + h);
        }
        case 5 -> { // type flag
          byte t = TYPES[r.nextInt(TYPES.length)];
          put(b, h + 156, new byte[] {t});
          log.add("type@" + h + "=" + (char) t);
        }
        case 6 -> { // pax-like record length digits in a data block
          int at = h + r.nextInt(20);
          put(
              b,
              at,
              String.valueOf(r.nextInt(3) == 0 ? 999999999 : r.nextInt(600))
                  .getBytes(StandardCharsets.US_ASCII));
          log.add("digits@" + at);
        }
        case 7 -> { // copy one block over another
          int from = 512 * r.nextInt(blocks);
          if (from + 512 <= b.length && h + 512 <= b.length) {
            System.arraycopy(b, from, b, h, 512);
          }
          log.add("copy" + from + "->" + h);
        }
        default -> { // name bytes: slashes, dots, NULs, invalid UTF-8
          byte[] pool = {'/', '.', 0, (byte) 0xC3, (byte) 0xFF, 'a'};
          int at = h + r.nextInt(100);
          put(b, at, new byte[] {pool[r.nextInt(pool.length)]});
          log.add("name@" + at);
        }
      }
      if (r.nextInt(4) != 0) {
        fixChecksums(b, r.nextBoolean()); // let most mutants past the checksum to reach deeper code
      }
    }
    return b;
  }

  /** Recomputes the checksum of every block that looks like a header (has a ustar magic). */
  private static void fixChecksums(byte[] b, boolean signed) {
    for (int h = 0; h + 512 <= b.length; h += 512) {
      if (b[h + 257] == 'u' && b[h + 258] == 's' && b[h + 259] == 't') {
        byte[] hdr = Arrays.copyOfRange(b, h, h + 512);
        TarWriter.setChecksum(hdr, signed);
        System.arraycopy(hdr, 0, b, h, 512);
      }
    }
  }

  private static void put(byte[] b, int at, byte[] v) {
    for (int i = 0; i < v.length && at + i < b.length; i++) {
      if (at + i >= 0) {
        b[at + i] = v[i];
      }
    }
  }

  private static final long[] EXTREMES = {
    -1, 0, 1, 511, 512, Integer.MAX_VALUE, 0xFFFFFFFFL, Long.MAX_VALUE, Long.MIN_VALUE, 1L << 40
  };

  private static byte[] mutateIndex(byte[] idx, Random r, List<String> log) {
    byte[] b = idx.clone();
    ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    switch (r.nextInt(4)) {
      case 0 -> { // counts in the header
        int field = 12 + 4 * r.nextInt(3);
        bb.putInt(field, (int) EXTREMES[r.nextInt(EXTREMES.length)]);
        log.add("idx count@" + field);
      }
      case 1 -> { // key bytes / tar length
        int field = r.nextBoolean() ? 24 : 32;
        bb.putLong(field, EXTREMES[r.nextInt(EXTREMES.length)]);
        log.add("idx long@" + field);
      }
      case 2 -> { // an 8-byte word in the body
        if (b.length > ShardIndexFile.HEADER_BYTES + 8) {
          int at =
              ShardIndexFile.HEADER_BYTES + r.nextInt(b.length - ShardIndexFile.HEADER_BYTES - 8);
          bb.putLong(at, EXTREMES[r.nextInt(EXTREMES.length)]);
          log.add("idx body@" + at);
        }
      }
      default -> { // flip bits anywhere
        for (int j = 0; j < 1 + r.nextInt(4); j++) {
          b[r.nextInt(b.length)] ^= (byte) (1 << r.nextInt(8));
        }
        log.add("idx flip");
      }
    }
    if (r.nextInt(4) != 0 && b.length >= ShardIndexFile.HEADER_BYTES) {
      bb.putInt(ShardIndexFile.CRC_OFFSET, ShardIndexFile.crc(b)); // reach the structural checks
    }
    return b;
  }
}
