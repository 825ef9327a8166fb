package io.sluice.planner;

/**
 * One epoch of a {@link GlobalSequence} split over ranks. Immutable; safe to share.
 *
 * <p>Step t covers epoch positions {@code [t*G, (t+1)*G)} with {@code G = worldSize * batchSize};
 * rank r takes {@code [t*G + r*B, t*G + (r+1)*B)}. With {@code dropLast} the epoch has {@code
 * floor(N/G)} steps and the tail is dropped; without it, {@code ceil(N/G)} steps and epoch position
 * {@code p >= N} reads sequence position {@code p mod N} and is marked padded (DistributedSampler's
 * padding, which also works when G > N). Every rank gets {@code stepCount()} batches.
 *
 * <p>Epoch positions do not depend on the world size, so a cursor (positions consumed) taken at one
 * world size resumes at any other with the same G. When G changes, the positions still continue
 * from the cursor: {@link #stepAtCursor} accepts any cursor that is a multiple of the new G.
 */
public final class EpochPlan {
  private final GlobalSequence sequence;
  private final int worldSize;
  private final int batchSize;
  private final long globalBatch;
  private final boolean dropLast;
  private final long size;
  private final long stepCount;

  private EpochPlan(GlobalSequence sequence, int worldSize, int batchSize, boolean dropLast) {
    this.sequence = sequence;
    this.worldSize = worldSize;
    this.batchSize = batchSize;
    this.globalBatch = (long) worldSize * batchSize;
    this.dropLast = dropLast;
    this.size = sequence.size();
    this.stepCount = dropLast ? size / globalBatch : (size + globalBatch - 1) / globalBatch;
  }

  /**
   * The plan of {@code sequence} over {@code worldSize} ranks taking {@code batchSize} samples per
   * step. With {@code dropLast} and G > N the epoch has no steps.
   */
  public static EpochPlan of(
      GlobalSequence sequence, int worldSize, int batchSize, boolean dropLast) {
    if (sequence == null) {
      throw new IllegalArgumentException("sequence=null must be non-null");
    }
    if (worldSize < 1) {
      throw new IllegalArgumentException("world_size=" + worldSize + " must be >= 1");
    }
    if (batchSize < 1) {
      throw new IllegalArgumentException("batch_size=" + batchSize + " must be >= 1");
    }
    return new EpochPlan(sequence, worldSize, batchSize, dropLast);
  }

  public GlobalSequence sequence() {
    return sequence;
  }

  public int worldSize() {
    return worldSize;
  }

  public int batchSize() {
    return batchSize;
  }

  /** G = worldSize * batchSize: the positions one step covers across all ranks. */
  public long globalBatch() {
    return globalBatch;
  }

  public boolean dropLast() {
    return dropLast;
  }

  /** Batches per rank, the same for every rank. */
  public long stepCount() {
    return stepCount;
  }

  /** Epoch positions this epoch covers: {@code stepCount() * globalBatch()}. */
  public long epochLength() {
    return stepCount * globalBatch;
  }

  /** Global samples consumed once every rank has taken {@code step}: {@code (step+1) * G}. */
  public long cursorAfter(long step) {
    checkStep(step);
    return (step + 1) * globalBatch;
  }

  /**
   * The first step to serve when resuming at {@code cursor}: {@code cursor / G}; equal to {@link
   * #stepCount()} when the epoch is finished. The cursor may come from a plan with another world
   * size or batch size; it must be a multiple of this plan's G and at most {@link #epochLength()}.
   */
  public long stepAtCursor(long cursor) {
    if (cursor < 0 || cursor % globalBatch != 0 || cursor > epochLength()) {
      throw new IllegalArgumentException(
          "start_cursor="
              + cursor
              + " must be a multiple of global batch G="
              + globalBatch
              + " in [0, epochLength="
              + epochLength()
              + "]");
    }
    return cursor / globalBatch;
  }

  /**
   * Writes rank {@code rank}'s batch at {@code step} into {@code sampleIds} (length {@code
   * batchSize}); {@code padded[i]}, when {@code padded} is non-null, says whether element i repeats
   * a sample as padding.
   */
  public void fill(int rank, long step, long[] sampleIds, boolean[] padded) {
    checkRank(rank);
    checkStep(step);
    if (sampleIds == null || sampleIds.length != batchSize) {
      throw new IllegalArgumentException(
          "sampleIds.length="
              + (sampleIds == null ? "null" : sampleIds.length)
              + " must be batch_size="
              + batchSize);
    }
    if (padded != null && padded.length != batchSize) {
      throw new IllegalArgumentException(
          "padded.length=" + padded.length + " must be batch_size=" + batchSize);
    }
    long start = step * globalBatch + (long) rank * batchSize;
    int real = (int) Math.max(0, Math.min(batchSize, size - start));
    if (real > 0) {
      sequence.sampleRange(start, sampleIds, 0, real);
    }
    for (int i = real; i < batchSize; i++) {
      sampleIds[i] = sequence.sampleAt((start + i) % size);
    }
    if (padded != null) {
      for (int i = 0; i < batchSize; i++) {
        padded[i] = i >= real;
      }
    }
  }

  /** Rank {@code rank}'s batch at {@code step}: a new array of {@code batchSize} sample ids. */
  public long[] batch(int rank, long step) {
    long[] ids = new long[batchSize];
    fill(rank, step, ids, null);
    return ids;
  }

  /**
   * The epoch position of element {@code index} of rank {@code rank}'s batch at {@code step}:
   * {@code step*G + rank*B + index}, in {@code [0, epochLength())}. Positions {@code >= N} are
   * padding and read {@link #sequencePosition sequencePosition(p)}.
   */
  public long positionOf(int rank, long step, int index) {
    checkRank(rank);
    checkStep(step);
    if (index < 0 || index >= batchSize) {
      throw new IllegalArgumentException(
          "index=" + index + " must be in [0, batch_size=" + batchSize + ")");
    }
    return step * globalBatch + (long) rank * batchSize + index;
  }

  /** Whether epoch position {@code position} is padding (a repeat of an earlier position). */
  public boolean isPadding(long position) {
    checkPosition(position);
    return position >= size;
  }

  /** The sequence position that epoch position {@code position} reads: {@code position mod N}. */
  public long sequencePosition(long position) {
    checkPosition(position);
    return position % size;
  }

  /** The rank that epoch position {@code position} belongs to. */
  public int rankOf(long position) {
    checkPosition(position);
    return (int) ((position % globalBatch) / batchSize);
  }

  private void checkPosition(long position) {
    if (position < 0 || position >= epochLength()) {
      throw new IllegalArgumentException(
          "position=" + position + " must be in [0, epochLength=" + epochLength() + ")");
    }
  }

  private void checkRank(int rank) {
    if (rank < 0 || rank >= worldSize) {
      throw new IllegalArgumentException(
          "rank=" + rank + " must be in [0, world_size=" + worldSize + ")");
    }
  }

  private void checkStep(long step) {
    if (step < 0 || step >= stepCount) {
      throw new IllegalArgumentException(
          "step=" + step + " must be in [0, stepCount=" + stepCount + ")");
    }
  }

  @Override
  public String toString() {
    return "EpochPlan{"
        + sequence
        + ", world_size="
        + worldSize
        + ", batch_size="
        + batchSize
        + ", drop_last="
        + dropLast
        + ", steps="
        + stepCount
        + "}";
  }
}
