package io.sluice.prefetch;

/**
 * How far and how hard the prefetcher reads ahead. Every value is checked, naming the option.
 *
 * @param horizonSteps steps ahead of each stream's consumption that may be read (the look-ahead
 *     window W; the byte limit below usually binds first)
 * @param windowBytes bytes read ahead and not yet consumed, over all streams of a job, at most;
 *     also capped at half the job's cache so that read-ahead never evicts itself
 * @param coalesceGapBytes two ranges of one shard at most this far apart are read as one (the gap
 *     is read and dropped); ranges farther apart are still joined when every sample in the gap is
 *     needed soon enough to be kept in the cache
 * @param maxReadBytes the longest single read a coalesced range may grow to
 * @param minInFlight reads in flight at least (the adaptive limit's floor)
 * @param maxInFlight reads in flight at most (the adaptive limit's ceiling)
 */
public record PrefetchOptions(
    int horizonSteps,
    long windowBytes,
    long coalesceGapBytes,
    int maxReadBytes,
    int minInFlight,
    int maxInFlight) {
  public static final int DEFAULT_HORIZON_STEPS = 256;
  public static final long DEFAULT_WINDOW_BYTES = 512L << 20;
  public static final long DEFAULT_COALESCE_GAP_BYTES = 16L << 10;
  public static final int DEFAULT_MAX_READ_BYTES = 1 << 20;
  public static final int DEFAULT_MIN_IN_FLIGHT = 16;
  public static final int DEFAULT_MAX_IN_FLIGHT = 128;

  public PrefetchOptions {
    check("horizon_steps", horizonSteps, 1, 1 << 20);
    check("window_bytes", windowBytes, 1, Long.MAX_VALUE);
    check("coalesce_gap_bytes", coalesceGapBytes, 0, 1L << 30);
    check("max_read_bytes", maxReadBytes, 4096, 1L << 30);
    check("min_in_flight", minInFlight, 1, 4096);
    check("max_in_flight", maxInFlight, minInFlight, 4096);
  }

  public static PrefetchOptions defaults() {
    return new PrefetchOptions(
        DEFAULT_HORIZON_STEPS,
        DEFAULT_WINDOW_BYTES,
        DEFAULT_COALESCE_GAP_BYTES,
        DEFAULT_MAX_READ_BYTES,
        DEFAULT_MIN_IN_FLIGHT,
        DEFAULT_MAX_IN_FLIGHT);
  }

  public PrefetchOptions withHorizonSteps(int v) {
    return new PrefetchOptions(
        v, windowBytes, coalesceGapBytes, maxReadBytes, minInFlight, maxInFlight);
  }

  public PrefetchOptions withWindowBytes(long v) {
    return new PrefetchOptions(
        horizonSteps, v, coalesceGapBytes, maxReadBytes, minInFlight, maxInFlight);
  }

  public PrefetchOptions withCoalesceGapBytes(long v) {
    return new PrefetchOptions(
        horizonSteps, windowBytes, v, maxReadBytes, minInFlight, maxInFlight);
  }

  public PrefetchOptions withMaxReadBytes(int v) {
    return new PrefetchOptions(
        horizonSteps, windowBytes, coalesceGapBytes, v, minInFlight, maxInFlight);
  }

  public PrefetchOptions withInFlight(int min, int max) {
    return new PrefetchOptions(horizonSteps, windowBytes, coalesceGapBytes, maxReadBytes, min, max);
  }

  private static void check(String name, long value, long min, long max) {
    if (value < min || value > max) {
      throw new IllegalArgumentException(
          name + "=" + value + " must be in [" + min + ", " + max + "]");
    }
  }
}
