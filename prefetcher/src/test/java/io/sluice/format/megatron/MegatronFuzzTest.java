package io.sluice.format.megatron;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Property: whatever bytes a Megatron dataset holds, indexing and reading fail only with {@link
 * DatasetFormatException}, never with an index, allocation or Arrow error, and leak nothing.
 * Mutants of a valid two-shard dataset: byte flips, truncation, extension, extreme values over
 * header, length, pointer and document fields, a missing file; and the same in-place rewrites of an
 * {@code .idx} (or a truncated {@code .bin}) after the dataset is open, which the fill must catch.
 *
 * <p>CI runs 1,500 mutants or 5 seconds, whichever comes first. A long run, unbounded in time:
 *
 * <pre>
 * ./mvnw -B -o -pl prefetcher test -Dtest=MegatronFuzzTest -Dsluice.fuzz.iterations=200000
 * </pre>
 */
class MegatronFuzzTest {
  private static final long SEED = 0x5EEDL;
  private static final int DEFAULT_ITERATIONS = 1500;
  private static final long DEFAULT_BUDGET_MS = 5000;
  private static final long[] EXTREMES = {
    0,
    1,
    -1,
    2,
    33,
    34,
    Integer.MAX_VALUE,
    Integer.MIN_VALUE,
    0xFFFF_FFFFL,
    1L << 32,
    1L << 40,
    Long.MAX_VALUE,
    Long.MIN_VALUE,
    Long.MAX_VALUE / 12,
    Long.MAX_VALUE / 8 + 1
  };

  @TempDir Path dir;

  private final MegatronFormat format = new MegatronFormat();
  private byte[][] originals; // a.bin, a.idx, b.bin, b.idx
  private final String[] names = {"a.bin", "a.idx", "b.bin", "b.idx"};
  private final int[] sequenceCounts = {9, 6};

  @Test
  void onlyDatasetFormatExceptionsEverEscape() throws IOException {
    Random base = new Random(SEED);
    MegatronWriter.write(
        dir,
        "a",
        MegatronDtype.INT16,
        MegatronWriter.randomSequences(base, MegatronDtype.INT16, sequenceCounts[0], 12));
    MegatronWriter.write(
        dir,
        "b",
        MegatronDtype.INT16,
        MegatronWriter.randomSequences(base, MegatronDtype.INT16, sequenceCounts[1], 12));
    originals = new byte[names.length][];
    for (int i = 0; i < names.length; i++) {
      originals[i] = Files.readAllBytes(dir.resolve(names[i]));
    }
    String property = System.getProperty("sluice.fuzz.iterations");
    int iterations = property == null ? DEFAULT_ITERATIONS : Integer.parseInt(property);
    long deadline =
        property == null ? System.nanoTime() + DEFAULT_BUDGET_MS * 1_000_000 : Long.MAX_VALUE;
    int ran = 0;
    int indexed = 0;
    int refused = 0;
    try (BufferAllocator allocator = new RootAllocator();
        PosixReadBackend posix = new PosixReadBackend()) {
      for (int it = 0; it < iterations && System.nanoTime() < deadline; it++) {
        long seed = mix(SEED + it);
        Random rnd = new Random(seed);
        boolean afterOpen = rnd.nextInt(4) == 0;
        String what = "";
        try {
          restore();
          if (afterOpen) {
            what = runMutatedAfterOpen(rnd, allocator, posix);
          } else {
            what = mutate(rnd, false);
            format.index(dir, Map.of(), IndexProgress.NONE);
            indexed++;
            readEverything(allocator, posix);
          }
        } catch (DatasetFormatException e) {
          refused++;
          assertTrue(e.getMessage().startsWith("file="), e.getMessage());
        } catch (Throwable t) {
          fail("seed=" + seed + " iteration=" + it + " mutation=[" + what + "] threw " + t, t);
        }
        ran++;
      }
    }
    assertTrue(ran >= Math.min(iterations, 200), "only " + ran + " mutants ran in the budget");
    System.out.printf(
        "MegatronFuzzTest: %d mutants, %d indexed, %d refused with DatasetFormatException%n",
        ran, indexed, refused);
  }

  /** Spreads consecutive seeds apart: java.util.Random's first draws from close seeds correlate. */
  private static long mix(long z) {
    z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
    z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
    return z ^ (z >>> 33);
  }

  /** Index the valid dataset, open it, mutate in place, then read every sequence. */
  private String runMutatedAfterOpen(Random rnd, BufferAllocator allocator, PosixReadBackend posix)
      throws IOException {
    format.index(dir, Map.of(), IndexProgress.NONE);
    try (SampleSource source = Formats.open(dir, posix)) {
      String what = mutate(rnd, true);
      read(source, allocator);
      return what;
    }
  }

  private void readEverything(BufferAllocator allocator, PosixReadBackend posix)
      throws IOException {
    try (SampleSource source = Formats.open(dir, posix)) {
      read(source, allocator);
    }
  }

  private static void read(SampleSource source, BufferAllocator allocator) throws IOException {
    long n = source.layout().totalSamples();
    long[] ids = new long[(int) n];
    for (int i = 0; i < n; i++) {
      ids[i] = n - 1 - i;
    }
    for (int from = 0; from < n; from += 4) {
      int count = (int) Math.min(4, n - from);
      long[] chunk = Arrays.copyOfRange(ids, from, from + count);
      try (VectorSchemaRoot root = VectorSchemaRoot.create(source.schema(), allocator)) {
        source.fill(chunk, count, root);
        root.setRowCount(count);
      }
    }
  }

  private void restore() throws IOException {
    Files.deleteIfExists(dir.resolve(Manifest.FILE_NAME));
    for (int i = 0; i < names.length; i++) {
      Files.write(dir.resolve(names[i]), originals[i]);
    }
  }

  /**
   * Applies one to three mutations to the files; {@code inPlace} keeps every length (a mapped
   * {@code .idx} may not shrink under a reader) except a {@code .bin}'s, which may be truncated.
   */
  private String mutate(Random rnd, boolean inPlace) throws IOException {
    StringBuilder what = new StringBuilder();
    int rounds = 1 + rnd.nextInt(3);
    for (int r = 0; r < rounds; r++) {
      int f = rnd.nextInt(10) < 8 ? (rnd.nextBoolean() ? 1 : 3) : (rnd.nextBoolean() ? 0 : 2);
      Path file = dir.resolve(names[f]);
      if (!Files.exists(file)) {
        continue;
      }
      byte[] b = Files.readAllBytes(file);
      int op = rnd.nextInt(inPlace ? 2 : 6);
      if (f % 2 == 0 && inPlace) {
        op = 4; // a .bin: truncate
      }
      switch (op) {
        case 0 -> {
          int flips = 1 + rnd.nextInt(4);
          for (int k = 0; k < flips && b.length > 0; k++) {
            int at = rnd.nextInt(b.length);
            b[at] ^= (byte) (1 << rnd.nextInt(8));
            what.append(names[f]).append(" flip@").append(at).append("; ");
          }
        }
        case 1 -> {
          // Extreme, random, or small plausible values (these often index: overlapping,
          // reordered or shortened sequences that the reader must still serve).
          long value =
              switch (rnd.nextInt(3)) {
                case 0 -> rnd.nextLong();
                case 1 -> rnd.nextInt(40);
                default -> EXTREMES[rnd.nextInt(EXTREMES.length)];
              };
          int[] field = field(rnd, f, b.length);
          if (field[0] + field[1] <= b.length) {
            ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
            switch (field[1]) {
              case 1 -> buf.put(field[0], (byte) value);
              case 4 -> buf.putInt(field[0], (int) value);
              default -> buf.putLong(field[0], value);
            }
          }
          what.append(names[f])
              .append(" field@")
              .append(field[0])
              .append('=')
              .append(value)
              .append("; ");
        }
        case 2 -> {
          byte[] extra = new byte[1 + rnd.nextInt(rnd.nextBoolean() ? 8 : 200)];
          rnd.nextBytes(extra);
          byte[] longer = Arrays.copyOf(b, b.length + extra.length);
          System.arraycopy(extra, 0, longer, b.length, extra.length);
          b = longer;
          what.append(names[f]).append(" extend+").append(extra.length).append("; ");
        }
        case 3 -> {
          Files.delete(file);
          what.append(names[f]).append(" deleted; ");
          continue;
        }
        default -> {
          int keep = b.length == 0 ? 0 : rnd.nextInt(b.length);
          b = Arrays.copyOf(b, keep);
          what.append(names[f]).append(" truncate=").append(keep).append("; ");
        }
      }
      if (inPlace && f % 2 == 1) {
        MegatronWriter.patch(file, 0, ByteBuffer.wrap(b));
      } else {
        Files.write(file, b);
      }
    }
    return what.toString();
  }

  /** {offset, width} of a random field of file {@code f} as the unmutated layout places it. */
  private int[] field(Random rnd, int f, int length) {
    if (f % 2 == 0) {
      return new int[] {length == 0 ? 0 : rnd.nextInt(length), 8};
    }
    int n = sequenceCounts[f / 2];
    int d = (n + 1) / 2 + 1;
    return switch (rnd.nextInt(7)) {
      case 0 -> new int[] {9, 8};
      case 1 -> new int[] {17, 1};
      case 2 -> new int[] {18, 8};
      case 3 -> new int[] {26, 8};
      case 4 -> new int[] {34 + 4 * rnd.nextInt(n), 4};
      case 5 -> new int[] {34 + 4 * n + 8 * rnd.nextInt(n), 8};
      default -> new int[] {34 + 12 * n + 8 * rnd.nextInt(d), 8};
    };
  }
}
