package io.sluice.planner;

import java.util.Arrays;

/**
 * What a node's prefetcher needs from the plan: the sample ids its local ranks take at steps
 * t..t+k, and the next step at which a sample is needed, over this epoch and the next, without
 * materialising either epoch. Steps of the next epoch are numbered {@code thisEpoch.stepCount() +
 * s}. Immutable; safe to share.
 */
public final class LookAhead {
  private final EpochPlan thisEpoch;
  private final EpochPlan nextEpoch;
  private final int[] localRanks;

  private LookAhead(EpochPlan thisEpoch, EpochPlan nextEpoch, int[] localRanks) {
    this.thisEpoch = thisEpoch;
    this.nextEpoch = nextEpoch;
    this.localRanks = localRanks;
  }

  /**
   * A look-ahead over {@code thisEpoch} and {@code nextEpoch} (null when there is none) for the
   * ranks in {@code localRanks} (copied, distinct, each below both plans' world sizes).
   */
  public static LookAhead of(EpochPlan thisEpoch, EpochPlan nextEpoch, int[] localRanks) {
    if (thisEpoch == null) {
      throw new IllegalArgumentException("thisEpoch=null must be non-null");
    }
    if (localRanks == null || localRanks.length == 0) {
      throw new IllegalArgumentException("localRanks.length=0 must be >= 1");
    }
    int[] ranks = localRanks.clone();
    Arrays.sort(ranks);
    for (int i = 0; i < ranks.length; i++) {
      int r = ranks[i];
      if (i > 0 && ranks[i - 1] == r) {
        throw new IllegalArgumentException("localRanks rank=" + r + " must not repeat");
      }
      checkRank(r, thisEpoch, "thisEpoch");
      if (nextEpoch != null) {
        checkRank(r, nextEpoch, "nextEpoch");
      }
    }
    return new LookAhead(thisEpoch, nextEpoch, ranks);
  }

  private static void checkRank(int rank, EpochPlan plan, String which) {
    if (rank < 0 || rank >= plan.worldSize()) {
      throw new IllegalArgumentException(
          "localRanks rank="
              + rank
              + " must be in [0, "
              + which
              + ".world_size="
              + plan.worldSize()
              + ")");
    }
  }

  public EpochPlan thisEpoch() {
    return thisEpoch;
  }

  /** The next epoch's plan, or null. */
  public EpochPlan nextEpoch() {
    return nextEpoch;
  }

  /** The local ranks, ascending. */
  public int[] localRanks() {
    return localRanks.clone();
  }

  /** Steps in this epoch plus the next (when there is one): the end of the look-ahead horizon. */
  public long horizonSteps() {
    long steps = thisEpoch.stepCount() + (nextEpoch == null ? 0 : nextEpoch.stepCount());
    return steps < 0 ? Long.MAX_VALUE : steps; // two epochs of 2^62 steps each
  }

  /**
   * The local ranks' sample ids for steps {@code [fromStep, fromStep + steps)} in need order:
   * step-major, then rank (ascending), then batch index. Steps at or past {@code
   * thisEpoch.stepCount()} read the next epoch; the result stops at {@link #horizonSteps()}, so it
   * may be shorter than {@code steps * localRanks * batchSize}. Padding repeats appear as
   * duplicates.
   */
  public long[] samplesForSteps(long fromStep, int steps) {
    if (fromStep < 0) {
      throw new IllegalArgumentException("fromStep=" + fromStep + " must be >= 0");
    }
    if (steps < 0) {
      throw new IllegalArgumentException("steps=" + steps + " must be >= 0");
    }
    long horizon = horizonSteps();
    long end = fromStep >= horizon ? fromStep : fromStep + Math.min(horizon - fromStep, steps);
    long total = 0;
    for (long s = fromStep; s < end; s++) {
      total += (long) planOf(s).batchSize() * localRanks.length;
    }
    if (total > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException(
          "steps=" + steps + " needs " + total + " ids, more than an array holds");
    }
    long[] out = new long[(int) total];
    int at = 0;
    long[] buffer = null;
    for (long s = fromStep; s < end; s++) {
      EpochPlan plan = planOf(s);
      long step = s < thisEpoch.stepCount() ? s : s - thisEpoch.stepCount();
      if (buffer == null || buffer.length != plan.batchSize()) {
        buffer = new long[plan.batchSize()];
      }
      for (int rank : localRanks) {
        plan.fill(rank, step, buffer, null);
        System.arraycopy(buffer, 0, out, at, buffer.length);
        at += buffer.length;
      }
    }
    return out;
  }

  /**
   * The smallest step {@code >= currentStep} at which a local rank needs {@code sampleId}, counting
   * next-epoch steps as {@code thisEpoch.stepCount() + s}; {@link Long#MAX_VALUE} when no local
   * rank needs it again within the horizon. Cost: one {@link GlobalSequence#positionOf} per epoch
   * plus O(local ranks), never a scan of the epoch.
   */
  public long nextUseStep(long sampleId, long currentStep) {
    long n = thisEpoch.sequence().size();
    if (sampleId < 0 || sampleId >= n) {
      throw new IllegalArgumentException(
          "sampleId=" + sampleId + " must be in [0, totalSamples=" + n + ")");
    }
    if (currentStep < 0) {
      throw new IllegalArgumentException("currentStep=" + currentStep + " must be >= 0");
    }
    long thisSteps = thisEpoch.stepCount();
    if (currentStep < thisSteps) {
      long s = nextUseIn(thisEpoch, sampleId, currentStep);
      if (s != Long.MAX_VALUE) {
        return s;
      }
    }
    if (nextEpoch == null || sampleId >= nextEpoch.sequence().size()) {
      return Long.MAX_VALUE;
    }
    long s = nextUseIn(nextEpoch, sampleId, Math.max(0, currentStep - thisSteps));
    return s == Long.MAX_VALUE ? s : thisSteps + s;
  }

  /** The first step >= fromStep of {@code plan} where a local rank takes {@code sampleId}. */
  private long nextUseIn(EpochPlan plan, long sampleId, long fromStep) {
    if (fromStep >= plan.stepCount()) {
      return Long.MAX_VALUE;
    }
    long n = plan.sequence().size();
    long g = plan.globalBatch();
    long b = plan.batchSize();
    long length = plan.epochLength();
    // The sample sits at sequence position p; epoch positions p, p + N, p + 2N, ... (below the
    // epoch length) all read it.
    long p = plan.sequence().positionOf(sampleId);
    if (g > n) {
      // One step (fromStep == 0 here) holding G/N copies or more: ask each local rank's range for
      // its first position congruent to p mod N instead of walking every copy.
      for (int rank : localRanks) {
        long start = rank * b;
        long first = start + Math.floorMod(p - start, n);
        if (first < start + b && first < length) {
          return 0;
        }
      }
      return Long.MAX_VALUE;
    }
    // G <= N: the epoch is shorter than N + G <= 2N, so at most two copies (p and the padding
    // repeat p + N) exist; take the first in a step >= fromStep held by a local rank.
    for (long q = p; q < length; q += n) {
      if (q >= fromStep * g && Arrays.binarySearch(localRanks, (int) ((q % g) / b)) >= 0) {
        return q / g;
      }
      if (q >= length - n) {
        break; // q + n is past the epoch (and may not fit a long when N is near 2^62)
      }
    }
    return Long.MAX_VALUE;
  }

  private EpochPlan planOf(long step) {
    return step < thisEpoch.stepCount() ? thisEpoch : nextEpoch;
  }
}
