package io.sluice.planner;

import static io.sluice.planner.DatasetLayoutTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.BitSet;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class GlobalSequenceTest {

  @Test
  void everyModeIsABijectionOnSmallAndEdgeSizes() {
    long[] sizes = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 256, 257};
    for (long n : sizes) {
      for (ShuffleMode mode : Cases.allModes()) {
        for (long seed = 0; seed < 4; seed++) {
          assertBijection(GlobalSequence.of(DatasetLayout.ofCount(n), seed, seed * 3, mode));
        }
      }
    }
    for (int bits = 10; bits <= 14; bits++) {
      for (long n : new long[] {(1L << bits) - 1, 1L << bits, (1L << bits) + 1}) {
        assertBijection(
            GlobalSequence.of(DatasetLayout.ofCount(n), 9, 1, new ShuffleMode.Global()));
      }
    }
  }

  @Test
  void everyModeIsABijectionOnRandomShardedLayouts() {
    SplittableRandom random = new SplittableRandom(21);
    for (int c = 0; c < 300; c++) {
      DatasetLayout layout = Cases.randomLayout(random, 40, 60);
      ShuffleMode mode = Cases.randomMode(random);
      assertBijection(GlobalSequence.of(layout, random.nextLong(), random.nextInt(10), mode));
    }
  }

  /** sampleAt hits every id once and positionOf inverts it exactly. */
  private static void assertBijection(GlobalSequence sequence) {
    long n = sequence.size();
    BitSet seen = new BitSet((int) n);
    long[] range = new long[(int) n];
    sequence.sampleRange(0, range, 0, (int) n);
    for (long p = 0; p < n; p++) {
      long id = sequence.sampleAt(p);
      assertTrue(id >= 0 && id < n, sequence + " position=" + p + " id=" + id);
      assertTrue(!seen.get((int) id), sequence + " id=" + id + " repeats at position=" + p);
      seen.set((int) id);
      assertEquals(p, sequence.positionOf(id), sequence + " positionOf(" + id + ")");
      assertEquals(id, range[(int) p], sequence + " sampleRange at " + p);
    }
  }

  @Test
  void sampleRangeMatchesSampleAtOnRandomWindows() {
    SplittableRandom random = new SplittableRandom(25);
    for (int c = 0; c < 300; c++) {
      DatasetLayout layout =
          c % 3 == 0
              ? DatasetLayout.ofCount(1 + random.nextLong(1L << 40))
              : Cases.randomLayout(random, 60, random.nextBoolean() ? 10 : 300);
      ShuffleMode mode =
          c % 5 == 0 ? new ShuffleMode.Block(9 + random.nextInt(20)) : Cases.randomMode(random);
      GlobalSequence sequence = GlobalSequence.of(layout, random.nextLong(), 2, mode);
      long n = sequence.size();
      int length = (int) Math.min(n, random.nextInt(700));
      long from = random.nextLong(n - length + 1);
      int offset = random.nextInt(3);
      long[] dst = new long[offset + length + 2];
      java.util.Arrays.fill(dst, -7);
      sequence.sampleRange(from, dst, offset, length);
      for (int i = 0; i < dst.length; i++) {
        long expected =
            i >= offset && i < offset + length ? sequence.sampleAt(from + i - offset) : -7;
        assertEquals(expected, dst[i], sequence + " from=" + from + " i=" + i);
      }
    }
  }

  @Test
  void hugeSequencesStayInRangeAndInvert() {
    SplittableRandom random = new SplittableRandom(31);
    long[] counts = new long[1000];
    java.util.Arrays.fill(counts, 10_000_000L);
    DatasetLayout[] layouts = {
      DatasetLayout.ofCount(1L << 62),
      DatasetLayout.ofCount((1L << 62) - 1),
      DatasetLayout.ofCount(10_000_000_000L),
      DatasetLayout.ofCount((1L << 61) + 1),
      DatasetLayout.ofShards(counts),
      DatasetLayout.ofShards(1L << 61, 1L << 60, 0, 12345, (1L << 61) - (1L << 60) - 12345),
    };
    for (DatasetLayout layout : layouts) {
      for (ShuffleMode mode : Cases.allModes()) {
        GlobalSequence sequence = GlobalSequence.of(layout, 77, 5, mode);
        long n = sequence.size();
        for (int i = 0; i < 2000; i++) {
          long p = i < 2 ? i * (n - 1) : random.nextLong(n);
          long id = sequence.sampleAt(p);
          assertTrue(id >= 0 && id < n, sequence + " position=" + p + " id=" + id);
          assertEquals(p, sequence.positionOf(id), sequence + " position=" + p);
        }
      }
    }
  }

  @Test
  void sameInputsGiveTheSameOrderAndEpochsOrSeedsDiffer() {
    DatasetLayout layout = DatasetLayout.ofShards(300, 0, 500, 200, 7, 993);
    for (ShuffleMode mode : Cases.allModes()) {
      long[] a = all(GlobalSequence.of(layout, 5, 0, mode));
      long[] again =
          all(GlobalSequence.of(DatasetLayout.ofShards(300, 0, 500, 200, 7, 993), 5, 0, mode));
      assertArrayEquals(a, again, mode.toString());
      if (mode instanceof ShuffleMode.None) {
        continue;
      }
      long[] nextEpoch = all(GlobalSequence.of(layout, 5, 1, mode));
      long[] otherSeed = all(GlobalSequence.of(layout, 6, 0, mode));
      assertTrue(!java.util.Arrays.equals(a, nextEpoch), mode + " epoch 0 == epoch 1");
      assertTrue(!java.util.Arrays.equals(a, otherSeed), mode + " seed 5 == seed 6");
    }
  }

  @Test
  void globalEpochsAreUnrelated() {
    int n = 100_000;
    GlobalSequence e0 = GlobalSequence.of(DatasetLayout.ofCount(n), 1, 0, new ShuffleMode.Global());
    GlobalSequence e1 = GlobalSequence.of(DatasetLayout.ofCount(n), 1, 1, new ShuffleMode.Global());
    int same = 0;
    for (int p = 0; p < n; p++) {
      if (e0.sampleAt(p) == e1.sampleAt(p)) {
        same++;
      }
    }
    // A random pair of permutations agrees in about one position (Poisson(1)).
    assertTrue(same < 10, "epochs agree at " + same + " positions");
  }

  /**
   * Pins the order: a change here changes every stored cursor's meaning, so it must be a
   * deliberate, versioned change (update docs/planner.md and these values together).
   */
  @Test
  void orderIsPinnedAcrossReleases() {
    DatasetLayout layout = DatasetLayout.ofShards(5, 3, 0, 4, 6);
    assertArrayEquals(
        GOLDEN_GLOBAL, all(GlobalSequence.of(layout, 42, 0, new ShuffleMode.Global())));
    assertArrayEquals(
        GOLDEN_BLOCK, all(GlobalSequence.of(layout, 42, 0, new ShuffleMode.Block(2))));
    assertArrayEquals(GOLDEN_SHARD, all(GlobalSequence.of(layout, 42, 0, new ShuffleMode.Shard())));
    assertArrayEquals(
        new long[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
        all(GlobalSequence.of(layout, 42, 0, new ShuffleMode.None())));
    GlobalSequence big =
        GlobalSequence.of(DatasetLayout.ofCount(1L << 40), 7, 3, new ShuffleMode.Global());
    assertArrayEquals(
        GOLDEN_BIG, new long[] {big.sampleAt(0), big.sampleAt(1), big.sampleAt(123456789)});
  }

  private static final long[] GOLDEN_GLOBAL = {
    15, 6, 1, 2, 10, 11, 0, 9, 8, 14, 13, 4, 16, 7, 12, 17, 3, 5
  };
  private static final long[] GOLDEN_BLOCK = {
    6, 7, 5, 8, 12, 14, 13, 17, 16, 9, 10, 15, 11, 2, 0, 3, 1, 4
  };
  private static final long[] GOLDEN_SHARD = {
    5, 6, 7, 12, 13, 14, 15, 16, 17, 8, 9, 10, 11, 0, 1, 2, 3, 4
  };
  private static final long[] GOLDEN_BIG = {54415466994L, 871222107313L, 1049823467840L};

  @Test
  void blockModeKeepsAtMostKShardsHotAndShardModeOne() {
    SplittableRandom random = new SplittableRandom(41);
    for (int c = 0; c < 200; c++) {
      DatasetLayout layout = Cases.randomLayout(random, 40, 50);
      int k = 1 + random.nextInt(6);
      GlobalSequence block =
          GlobalSequence.of(layout, random.nextLong(), 0, new ShuffleMode.Block(k));
      assertTrue(maxOverlappingShards(block) <= k, block + " k=" + k);
      GlobalSequence shard =
          GlobalSequence.of(layout, random.nextLong(), 0, new ShuffleMode.Shard());
      assertTrue(maxOverlappingShards(shard) <= 1, shard.toString());
    }
    // The check can fail: a global shuffle of 20 shards keeps nearly all of them hot at once.
    long[] counts = new long[20];
    java.util.Arrays.fill(counts, 50);
    GlobalSequence global =
        GlobalSequence.of(DatasetLayout.ofShards(counts), 1, 0, new ShuffleMode.Global());
    assertTrue(maxOverlappingShards(global) > 15);
  }

  @Test
  void blockModeShufflesWithinABlockAndShardModeDoesNot() {
    DatasetLayout layout = DatasetLayout.ofShards(1000, 1000, 1000);
    GlobalSequence block = GlobalSequence.of(layout, 3, 0, new ShuffleMode.Block(1));
    GlobalSequence shard = GlobalSequence.of(layout, 3, 0, new ShuffleMode.Shard());
    int ascending = 0;
    for (int p = 0; p + 1 < 3000; p++) {
      ascending += block.sampleAt(p + 1) == block.sampleAt(p) + 1 ? 1 : 0;
      if (p % 1000 != 999) {
        assertEquals(shard.sampleAt(p) + 1, shard.sampleAt(p + 1), "shard mode at " + p);
      }
    }
    assertTrue(ascending < 20, "block mode left " + ascending + " consecutive pairs");
  }

  /** The most shards whose [first, last] position spans overlap at any one position. */
  private static int maxOverlappingShards(GlobalSequence sequence) {
    DatasetLayout layout = sequence.layout();
    int shards = layout.shardCount();
    long[] first = new long[shards];
    long[] last = new long[shards];
    java.util.Arrays.fill(first, Long.MAX_VALUE);
    java.util.Arrays.fill(last, -1);
    for (long p = 0; p < sequence.size(); p++) {
      int s = layout.shardOf(sequence.sampleAt(p));
      first[s] = Math.min(first[s], p);
      last[s] = p;
    }
    int max = 0;
    for (long p = 0; p < sequence.size(); p++) {
      int open = 0;
      for (int s = 0; s < shards; s++) {
        if (first[s] <= p && p <= last[s]) {
          open++;
        }
      }
      max = Math.max(max, open);
    }
    return max;
  }

  @Test
  void rejectsBadArgumentsNamingFieldAndValue() {
    GlobalSequence sequence =
        GlobalSequence.of(DatasetLayout.ofCount(10), 1, 0, new ShuffleMode.Global());
    assertMessage("position=10 must be in [0, size=10)", () -> sequence.sampleAt(10));
    assertMessage("position=-1 must be in [0, size=10)", () -> sequence.sampleAt(-1));
    assertMessage("sampleId=10 must be in [0, size=10)", () -> sequence.positionOf(10));
    assertMessage(
        "fromPosition=5 length=6 must lie in [0, size=10)",
        () -> sequence.sampleRange(5, new long[6], 0, 6));
    assertMessage(
        "shuffle=null must be one of global, block, shard, none",
        () -> GlobalSequence.of(DatasetLayout.ofCount(1), 0, 0, null));
  }

  static long[] all(GlobalSequence sequence) {
    long[] out = new long[(int) sequence.size()];
    for (int p = 0; p < out.length; p++) {
      out[p] = sequence.sampleAt(p);
    }
    return out;
  }
}
