package io.sluice.planner;

import static io.sluice.planner.DatasetLayoutTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class LookAheadTest {

  @Test
  void samplesForStepsMatchesTheBatchesOfBothEpochs() {
    SplittableRandom random = new SplittableRandom(81);
    for (int c = 0; c < 200; c++) {
      Setup s = Setup.random(random);
      long horizon = s.lookAhead.horizonSteps();
      for (int t = 0; t < 20; t++) {
        long from = random.nextLong(horizon + 2);
        int steps = random.nextInt(6);
        assertArrayEquals(
            s.bruteSamples(from, steps),
            s.lookAhead.samplesForSteps(from, steps),
            s + " from=" + from + " steps=" + steps);
      }
    }
  }

  @Test
  void nextUseStepMatchesBruteForce() {
    SplittableRandom random = new SplittableRandom(91);
    for (int c = 0; c < 300; c++) {
      Setup s = Setup.random(random);
      long horizon = s.lookAhead.horizonSteps();
      long n = s.thisEpoch.sequence().size();
      for (long id = 0; id < n; id++) {
        for (long step = 0; step <= horizon + 1; step++) {
          assertEquals(
              s.bruteNextUse(id, step),
              s.lookAhead.nextUseStep(id, step),
              s + " sampleId=" + id + " currentStep=" + step);
        }
      }
    }
  }

  @Test
  void aSampleOnlyOtherNodesNeedIsNeverNeeded() {
    DatasetLayout layout = DatasetLayout.ofCount(16);
    EpochPlan e0 =
        EpochPlan.of(GlobalSequence.of(layout, 1, 0, new ShuffleMode.None()), 4, 2, true);
    EpochPlan e1 =
        EpochPlan.of(GlobalSequence.of(layout, 1, 1, new ShuffleMode.None()), 4, 2, true);
    LookAhead rank0 = LookAhead.of(e0, e1, new int[] {0});
    assertEquals(Long.MAX_VALUE, rank0.nextUseStep(2, 0));
    assertEquals(0, rank0.nextUseStep(1, 0));
    assertEquals(1, rank0.nextUseStep(8, 0));
    assertEquals(2, rank0.nextUseStep(0, 1));
    assertEquals(Long.MAX_VALUE, LookAhead.of(e0, null, new int[] {0}).nextUseStep(0, 1));
    assertArrayEquals(new long[] {0, 1, 8, 9}, rank0.samplesForSteps(0, 2));
  }

  /** Regression: the padding-copy walk overflowed past 2^63 and looped forever for N near 2^62. */
  @Test
  @Timeout(value = 20, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  void nextUseStepOnHugeDatasetsTerminatesAndAgreesWithPositions() {
    SplittableRandom random = new SplittableRandom(101);
    DatasetLayout layout = DatasetLayout.ofCount(1L << 62);
    for (ShuffleMode mode : Cases.allModes()) {
      EpochPlan e0 = EpochPlan.of(GlobalSequence.of(layout, 3, 0, mode), 1000, 999, false);
      EpochPlan e1 = EpochPlan.of(GlobalSequence.of(layout, 3, 1, mode), 1000, 999, false);
      int[] ranks = {0, 7, 500};
      LookAhead lookAhead = LookAhead.of(e0, e1, ranks);
      for (int i = 0; i < 300; i++) {
        long padding = e0.epochLength() - layout.totalSamples();
        // Half the ids sit where the last step pads with a second copy of them.
        long id =
            i % 2 == 0
                ? random.nextLong(layout.totalSamples())
                : e0.sequence().sampleAt(random.nextLong(padding));
        long current = random.nextLong(e0.stepCount());
        assertEquals(
            expectedNextUse(e0, e1, ranks, id, current),
            lookAhead.nextUseStep(id, current),
            mode + " sampleId=" + id + " currentStep=" + current);
      }
    }
  }

  /**
   * From positions, for G much smaller than N: a sample's copy in each epoch sits at p (or p+N).
   */
  private static long expectedNextUse(
      EpochPlan e0, EpochPlan e1, int[] ranks, long id, long current) {
    for (EpochPlan plan : new EpochPlan[] {e0, e1}) {
      long p = plan.sequence().positionOf(id);
      long n = plan.sequence().size();
      long step = p / plan.globalBatch();
      boolean local = Arrays.stream(ranks).anyMatch(r -> r == plan.rankOf(p));
      long offset = plan == e0 ? 0 : e0.stepCount();
      if (local && (plan == e1 || step >= current)) {
        return offset + step;
      }
      if (p < plan.epochLength() - n) {
        long q = p + n;
        if (Arrays.stream(ranks).anyMatch(r -> r == plan.rankOf(q))) {
          return offset + q / plan.globalBatch();
        }
      }
    }
    return Long.MAX_VALUE;
  }

  @Test
  void theHorizonSaturatesForTwoEpochsOfTwoToTheSixtyTwoSteps() {
    DatasetLayout layout = DatasetLayout.ofCount(1L << 62);
    EpochPlan e0 =
        EpochPlan.of(GlobalSequence.of(layout, 1, 0, new ShuffleMode.None()), 1, 1, true);
    EpochPlan e1 =
        EpochPlan.of(GlobalSequence.of(layout, 1, 1, new ShuffleMode.None()), 1, 1, true);
    LookAhead lookAhead = LookAhead.of(e0, e1, new int[] {0});
    assertEquals(Long.MAX_VALUE, lookAhead.horizonSteps());
    long last = (1L << 62) - 1;
    assertArrayEquals(new long[] {last, 0, 1}, lookAhead.samplesForSteps(last, 3));
    assertEquals(1L << 62, lookAhead.nextUseStep(0, 1));
    assertEquals(last, lookAhead.nextUseStep(last, last));
  }

  @Test
  void rejectsBadArgumentsNamingFieldAndValue() {
    EpochPlan plan =
        EpochPlan.of(
            GlobalSequence.of(DatasetLayout.ofCount(10), 0, 0, new ShuffleMode.Global()),
            2,
            2,
            false);
    assertMessage(
        "localRanks rank=2 must be in [0, thisEpoch.world_size=2)",
        () -> LookAhead.of(plan, null, new int[] {2}));
    assertMessage(
        "localRanks rank=1 must not repeat", () -> LookAhead.of(plan, null, new int[] {1, 0, 1}));
    assertMessage("localRanks.length=0 must be >= 1", () -> LookAhead.of(plan, null, new int[0]));
    LookAhead lookAhead = LookAhead.of(plan, plan, new int[] {1});
    assertMessage(
        "sampleId=10 must be in [0, totalSamples=10)", () -> lookAhead.nextUseStep(10, 0));
    assertMessage("currentStep=-1 must be >= 0", () -> lookAhead.nextUseStep(0, -1));
    assertMessage("fromStep=-1 must be >= 0", () -> lookAhead.samplesForSteps(-1, 1));
    assertMessage("steps=-2 must be >= 0", () -> lookAhead.samplesForSteps(0, -2));
  }

  /** A random pair of epoch plans and local ranks, with brute-force answers. */
  private record Setup(EpochPlan thisEpoch, EpochPlan nextEpoch, int[] ranks, LookAhead lookAhead) {
    static Setup random(SplittableRandom random) {
      DatasetLayout layout = Cases.randomLayout(random, 6, random.nextBoolean() ? 4 : 30);
      ShuffleMode mode = Cases.randomMode(random);
      long seed = random.nextLong();
      int world = 1 + random.nextInt(6);
      int batch = 1 + random.nextInt(random.nextBoolean() ? 3 : 25);
      boolean dropLast = random.nextInt(3) == 0;
      EpochPlan e0 = EpochPlan.of(GlobalSequence.of(layout, seed, 4, mode), world, batch, dropLast);
      EpochPlan e1 =
          random.nextInt(4) == 0
              ? null
              : EpochPlan.of(GlobalSequence.of(layout, seed, 5, mode), world, batch, dropLast);
      int[] ranks = random.ints(0, world).distinct().limit(1 + random.nextInt(world)).toArray();
      return new Setup(e0, e1, ranks, LookAhead.of(e0, e1, ranks));
    }

    private EpochPlan planAt(long step) {
      return step < thisEpoch.stepCount() ? thisEpoch : nextEpoch;
    }

    private long horizon() {
      return thisEpoch.stepCount() + (nextEpoch == null ? 0 : nextEpoch.stepCount());
    }

    long[] bruteSamples(long from, int steps) {
      int[] sorted = ranks.clone();
      Arrays.sort(sorted);
      long[] out = new long[0];
      for (long s = from; s < Math.min(from + steps, horizon()); s++) {
        long local = s < thisEpoch.stepCount() ? s : s - thisEpoch.stepCount();
        for (int rank : sorted) {
          long[] batch = planAt(s).batch(rank, local);
          long[] grown = Arrays.copyOf(out, out.length + batch.length);
          System.arraycopy(batch, 0, grown, out.length, batch.length);
          out = grown;
        }
      }
      return out;
    }

    long bruteNextUse(long sampleId, long currentStep) {
      for (long s = currentStep; s < horizon(); s++) {
        long local = s < thisEpoch.stepCount() ? s : s - thisEpoch.stepCount();
        for (int rank : ranks) {
          for (long id : planAt(s).batch(rank, local)) {
            if (id == sampleId) {
              return s;
            }
          }
        }
      }
      return Long.MAX_VALUE;
    }

    @Override
    public String toString() {
      return thisEpoch + " next=" + nextEpoch + " ranks=" + Arrays.toString(ranks);
    }
  }
}
