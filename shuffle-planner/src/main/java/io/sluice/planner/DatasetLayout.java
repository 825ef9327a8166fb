package io.sluice.planner;

import java.util.Arrays;

/**
 * Ordered shards with sample counts. Sample ids are global indexes in shard order: shard 0 holds
 * ids {@code [0, c0)}, shard 1 holds {@code [c0, c0 + c1)}, and so on. Immutable; safe to share.
 */
public final class DatasetLayout {
  /** The largest dataset the planner accepts: positions and padded epoch lengths fit a long. */
  public static final long MAX_SAMPLES = 1L << 62;

  /** firstSample[i] = first sample id of shard i; firstSample[shardCount] = totalSamples. */
  private final long[] firstSample;

  private DatasetLayout(long[] firstSample) {
    this.firstSample = firstSample;
  }

  /**
   * A layout of {@code sampleCounts.length} shards (the array is copied). Shards may be empty; the
   * total must be in {@code [1, 2^62]}.
   */
  public static DatasetLayout ofShards(long... sampleCounts) {
    if (sampleCounts == null || sampleCounts.length == 0) {
      throw new IllegalArgumentException("shardCount=0 must be >= 1");
    }
    long[] first = new long[sampleCounts.length + 1];
    long total = 0;
    for (int i = 0; i < sampleCounts.length; i++) {
      long v = sampleCounts[i];
      if (v < 0) {
        throw new IllegalArgumentException("shard=" + i + " sampleCount=" + v + " must be >= 0");
      }
      if (v > MAX_SAMPLES - total) {
        throw new IllegalArgumentException(
            "totalSamples (through shard=" + i + ") must be <= " + MAX_SAMPLES + " (2^62)");
      }
      first[i] = total;
      total += v;
    }
    first[sampleCounts.length] = total;
    if (total < 1) {
      throw new IllegalArgumentException("totalSamples=" + total + " must be >= 1");
    }
    return new DatasetLayout(first);
  }

  /** A single shard of {@code samples} samples. */
  public static DatasetLayout ofCount(long samples) {
    if (samples < 1 || samples > MAX_SAMPLES) {
      throw new IllegalArgumentException(
          "samples=" + samples + " must be in [1, " + MAX_SAMPLES + "]");
    }
    return new DatasetLayout(new long[] {0, samples});
  }

  /** Samples across all shards (N). */
  public long totalSamples() {
    return firstSample[firstSample.length - 1];
  }

  public int shardCount() {
    return firstSample.length - 1;
  }

  public long shardSampleCount(int shard) {
    checkShard(shard);
    return firstSample[shard + 1] - firstSample[shard];
  }

  /** The id of the first sample of {@code shard} (equal to the next shard's when it is empty). */
  public long firstSampleOf(int shard) {
    checkShard(shard);
    return firstSample[shard];
  }

  /** The shard holding {@code sampleId}; never an empty shard. O(log shardCount). */
  public int shardOf(long sampleId) {
    if (sampleId < 0 || sampleId >= totalSamples()) {
      throw new IllegalArgumentException(
          "sampleId=" + sampleId + " must be in [0, totalSamples=" + totalSamples() + ")");
    }
    return lastAtOrBelow(firstSample, 0, shardCount(), sampleId);
  }

  /**
   * The largest index {@code i} in {@code [from, to)} with {@code starts[i] <= value}, where {@code
   * starts} is non-decreasing, {@code starts[from] <= value < starts[to]}. With runs of equal
   * starts (empty ranges) this picks the last of the run, which is the only non-empty range
   * containing {@code value}.
   */
  static int lastAtOrBelow(long[] starts, int from, int to, long value) {
    int lo = from;
    int hi = to - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (starts[mid] <= value) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  private void checkShard(int shard) {
    if (shard < 0 || shard >= shardCount()) {
      throw new IllegalArgumentException(
          "shard=" + shard + " must be in [0, shardCount=" + shardCount() + ")");
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof DatasetLayout other && Arrays.equals(firstSample, other.firstSample);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(firstSample);
  }

  @Override
  public String toString() {
    return "DatasetLayout{shards=" + shardCount() + ", samples=" + totalSamples() + "}";
  }
}
