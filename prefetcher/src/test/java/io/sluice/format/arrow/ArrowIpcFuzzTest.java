package io.sluice.format.arrow;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.SampleSource;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutates valid Arrow IPC files (file, stream and legacy stream framing) and checks that indexing
 * and reading every mutant fails, if at all, only with a {@link DatasetFormatException} naming the
 * file, and leaks no Arrow memory. Deterministic: mutant i uses seed {@code SEED + i}.
 *
 * <p>Bounded for CI (1,500 mutants or 5 seconds, whichever comes first). A long run:
 *
 * <pre>
 * ./mvnw -B -o -pl prefetcher test -Dtest=ArrowIpcFuzzTest -Dsluice.fuzz.iterations=200000
 * </pre>
 */
class ArrowIpcFuzzTest {
  private static final long SEED = 0x5EED_A770L;
  private static final String ITERATIONS_PROPERTY = "sluice.fuzz.iterations";

  /** Replays from mutant N (as a failure names it): {@code -Dsluice.fuzz.from=N}. */
  private static final String FROM_PROPERTY = "sluice.fuzz.from";

  private static final List<ArrowIpcFiles.Column> COLUMNS =
      List.of(
          ArrowIpcFiles.ID,
          ArrowIpcFiles.TEXT,
          ArrowIpcFiles.INTS,
          ArrowIpcFiles.PAIR,
          ArrowIpcFiles.STRUCT,
          ArrowIpcFiles.MAP,
          ArrowIpcFiles.WIDE_TEXT);
  private static final long MEMORY_LIMIT_BYTES = 64L << 20;
  private static final String[] NAMES = {"a.arrow", "a.ipc", "a.arrows"};

  @TempDir Path dir;

  @Test
  void mutantsFailOnlyWithDatasetFormatExceptionAndLeakNothing() throws IOException {
    String configured = System.getProperty(ITERATIONS_PROPERTY);
    int iterations = configured == null ? 1500 : Integer.parseInt(configured);
    long deadline = configured == null ? System.nanoTime() + 5_000_000_000L : Long.MAX_VALUE;
    byte[][] valid = validFiles();
    int done = 0;
    int[] outcomes = new int[3];
    // Bounded: a mutant that makes the reader allocate absurd sizes fails here, not the machine.
    try (RootAllocator root = new RootAllocator(MEMORY_LIMIT_BYTES)) {
      int from = Integer.getInteger(FROM_PROPERTY, 0);
      for (int i = from; i < from + iterations && System.nanoTime() < deadline; i++) {
        outcomes[runMutant(i, valid, root)]++;
        done++;
        if (configured != null && done % 10_000 == 0) {
          System.out.printf("arrow fuzz: %d mutants%n", done);
        }
      }
    }
    System.out.printf(
        "arrow fuzz: %d mutants: %d refused by index, %d by open or read, %d read%n",
        done, outcomes[REFUSED_BY_INDEX], outcomes[REFUSED_BY_READ], outcomes[READ]);
    assertTrue(done >= Math.min(iterations, 200), "only " + done + " mutants ran in the time");
  }

  /**
   * Mutants the long run once broke the reader with. 1055569: a fixed-size binary of width 262146
   * inside a fixed-size list passed the buffer-size check, because Arrow Java's BufferLayout keeps
   * bit widths in a short, and loading then asked for a 1 GiB child.
   */
  @Test
  void mutantsThatOnceBrokeTheReaderFailCleanly() throws IOException {
    byte[][] valid = validFiles();
    try (RootAllocator root = new RootAllocator(MEMORY_LIMIT_BYTES)) {
      for (int i : new int[] {1055569}) {
        runMutant(i, valid, root);
      }
    }
  }

  /** The valid shards the mutants start from, one per framing. */
  private byte[][] validFiles() throws IOException {
    byte[][] valid = new byte[3][];
    try (BufferAllocator a = new RootAllocator()) {
      ArrowIpcFiles.Framing[] framings = ArrowIpcFiles.Framing.values();
      for (int k = 0; k < 3; k++) {
        Path p = dir.resolve("valid-" + NAMES[k]);
        ArrowIpcFiles.write(p, COLUMNS, framings[k], 0, a, 6, 0, 9);
        valid[k] = Files.readAllBytes(p);
      }
    }
    return valid;
  }

  /** Makes mutant {@code i}, runs it, checks nothing leaked, and says how far it got. */
  private int runMutant(int i, byte[][] valid, RootAllocator root) throws IOException {
    Random rnd = new Random(SEED + i);
    int kind = rnd.nextInt(3);
    StringBuilder how = new StringBuilder(NAMES[kind]);
    byte[] mutant = valid[kind];
    int rounds = 1 + (rnd.nextInt(4) == 0 ? rnd.nextInt(3) : 0);
    for (int r = 0; r < rounds; r++) {
      mutant = mutate(mutant, rnd, how);
    }
    Path d = dir.resolve("m" + i);
    Files.createDirectories(d);
    int outcome = -1;
    try {
      outcome = runOne(d, NAMES[kind], mutant, valid[0], rnd, root);
    } catch (Throwable t) {
      fail("mutant " + i + " (seed " + (SEED + i) + ": " + how + ") threw " + t, t);
    }
    assertTrue(
        root.getAllocatedMemory() == 0,
        "mutant " + i + " (" + how + ") leaked " + root.getAllocatedMemory() + " bytes");
    deleteTree(d);
    return outcome;
  }

  private static final int REFUSED_BY_INDEX = 0;
  private static final int REFUSED_BY_READ = 1;
  private static final int READ = 2;

  /**
   * Indexes and reads one mutant and says how far it got. Only DatasetFormatException may escape,
   * and it must name a file of the folder.
   */
  private static int runOne(
      Path d, String name, byte[] mutant, byte[] validFile, Random rnd, BufferAllocator root)
      throws IOException {
    Files.write(d.resolve(name), mutant);
    if (rnd.nextInt(4) == 0) {
      Files.write(d.resolve("b.arrow"), validFile); // a second, intact shard
    }
    try {
      new ArrowIpcFormat().index(d, Map.of(), IndexProgress.NONE);
    } catch (DatasetFormatException e) {
      assertNamesFile(e, d);
      return REFUSED_BY_INDEX;
    }
    if (rnd.nextInt(8) == 0) {
      damageIndex(d.resolve(name + IndexFile.SUFFIX), rnd);
    }
    try (BufferAllocator a = root.newChildAllocator("mutant", 0, Long.MAX_VALUE);
        PosixReadBackend posix = new PosixReadBackend();
        SampleSource src = Formats.open(d, posix)) {
      if (Boolean.getBoolean("sluice.fuzz.verbose")) {
        System.out.println("schema " + src.schema() + " samples " + src.layout().totalSamples());
      }
      long n = src.layout().totalSamples();
      long[] ids = new long[(int) Math.min(n, 48)];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = i < 24 ? i : Math.floorMod(rnd.nextLong(), n);
      }
      fill(src, ids, a);
      long[] reversed = ids.clone();
      for (int i = 0; i < ids.length; i++) {
        reversed[i] = ids[ids.length - 1 - i];
      }
      fill(src, reversed, a);
    } catch (DatasetFormatException e) {
      assertNamesFile(e, d);
      return REFUSED_BY_READ;
    }
    return READ;
  }

  private static void fill(SampleSource src, long[] ids, BufferAllocator a) throws IOException {
    List<Field> fields = new ArrayList<>();
    fields.add(new Field("sample_id", FieldType.notNullable(new ArrowType.Int(64, false)), null));
    fields.addAll(src.schema().getFields());
    try (VectorSchemaRoot root = VectorSchemaRoot.create(new Schema(fields), a)) {
      src.fill(ids, ids.length, root);
      root.setRowCount(ids.length);
    }
  }

  private static void assertNamesFile(DatasetFormatException e, Path d) {
    assertTrue(
        e.file() != null && e.file().startsWith(d) && e.getMessage().contains("file=" + e.file()),
        e.getMessage());
  }

  /** Flips a byte of the companion index but keeps its stamp: open must notice. */
  private static void damageIndex(Path idx, Random rnd) throws IOException {
    FileTime t = Files.getLastModifiedTime(idx);
    byte[] b = Files.readAllBytes(idx);
    b[rnd.nextInt(b.length)] ^= (byte) (1 + rnd.nextInt(255));
    Files.write(idx, b);
    Files.setLastModifiedTime(idx, t);
  }

  private static final long[] EXTREMES = {
    0,
    1,
    -1,
    7,
    8,
    0x7FFF_FFFFL,
    0x8000_0000L,
    0xFFFF_FFFFL,
    0x1_0000_0000L,
    Long.MAX_VALUE,
    Long.MIN_VALUE,
    1L << 40,
    -8
  };

  /** One mutation of {@code in}, described into {@code how}. */
  static byte[] mutate(byte[] in, Random rnd, StringBuilder how) {
    byte[] b = in.clone();
    int len = b.length;
    switch (rnd.nextInt(9)) {
      case 0 -> {
        int n = 1 + rnd.nextInt(4);
        for (int i = 0; i < n && len > 0; i++) {
          int at = rnd.nextInt(len);
          b[at] ^= (byte) (1 << rnd.nextInt(8));
          how.append(" flip@").append(at);
        }
      }
      case 1 -> {
        int n = 1 + rnd.nextInt(8);
        for (int i = 0; i < n && len > 0; i++) {
          int at = rnd.nextInt(len);
          b[at] = (byte) rnd.nextInt(256);
          how.append(" byte@").append(at);
        }
      }
      case 2 -> {
        int to = len == 0 ? 0 : rnd.nextInt(len);
        how.append(" truncate@").append(to);
        return Arrays.copyOf(b, to);
      }
      case 3 -> {
        int n = 1 + rnd.nextInt(64);
        byte[] out = Arrays.copyOf(b, len + n);
        if (rnd.nextBoolean()) {
          for (int i = len; i < out.length; i++) {
            out[i] = (byte) rnd.nextInt(256);
          }
        }
        how.append(" extend+").append(n);
        return out;
      }
      case 4, 5 -> {
        // An int32 (length, count, offset) or int64 (offset, body length) field, or a lookalike.
        boolean wide = rnd.nextBoolean();
        int width = wide ? 8 : 4;
        if (len < width) {
          return b;
        }
        int at = structural(b, rnd, width);
        long v = pickExtreme(rnd, len);
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        if (wide) {
          bb.putLong(at, v);
        } else {
          bb.putInt(at, (int) v);
        }
        how.append(wide ? " int64@" : " int32@").append(at).append('=').append(v);
      }
      case 6 -> {
        if (len < 2) {
          return b;
        }
        int from = rnd.nextInt(len);
        int n = 1 + rnd.nextInt(Math.min(64, len - from));
        byte[] out = new byte[len - n];
        System.arraycopy(b, 0, out, 0, from);
        System.arraycopy(b, from + n, out, from, len - from - n);
        how.append(" delete@").append(from).append('+').append(n);
        return out;
      }
      case 7 -> {
        if (len < 2) {
          return b;
        }
        int from = rnd.nextInt(len);
        int n = 1 + rnd.nextInt(Math.min(64, len - from));
        byte[] out = new byte[len + n];
        System.arraycopy(b, 0, out, 0, from + n);
        System.arraycopy(b, from, out, from + n, len - from);
        how.append(" duplicate@").append(from).append('+').append(n);
        return out;
      }
      default -> {
        // Little-endian small integers are where lengths and counts live: nudge one.
        if (len < 4) {
          return b;
        }
        int at = rnd.nextInt(len / 4) * 4;
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int v = bb.getInt(at);
        int nv = v + (rnd.nextBoolean() ? 1 : -1) * (1 + rnd.nextInt(16));
        bb.putInt(at, nv);
        how.append(" nudge@").append(at).append(' ').append(v).append("->").append(nv);
      }
    }
    return b;
  }

  /**
   * A position likely to hold a framing field: after a 0xFFFFFFFF continuation marker (the metadata
   * length), the footer length before the closing magic, or any aligned position.
   */
  private static int structural(byte[] b, Random rnd, int width) {
    List<Integer> spots = new ArrayList<>();
    for (int i = 0; i + 8 <= b.length; i += 4) {
      if (b[i] == -1 && b[i + 1] == -1 && b[i + 2] == -1 && b[i + 3] == -1) {
        spots.add(i + 4);
      }
    }
    if (b.length >= 10) {
      spots.add(b.length - 10);
    }
    spots.removeIf(s -> s + width > b.length);
    if (!spots.isEmpty() && rnd.nextBoolean()) {
      return spots.get(rnd.nextInt(spots.size()));
    }
    return rnd.nextInt((b.length - width) / 4 + 1) * 4;
  }

  private static long pickExtreme(Random rnd, int len) {
    return switch (rnd.nextInt(3)) {
      case 0 -> EXTREMES[rnd.nextInt(EXTREMES.length)];
      case 1 -> len + rnd.nextInt(17) - 8;
      default -> rnd.nextInt(Math.max(1, len * 2));
    };
  }

  private static void deleteTree(Path d) throws IOException {
    try (Stream<Path> s = Files.walk(d)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
