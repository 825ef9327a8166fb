package io.sluice.prefetch;

/**
 * How many reads to keep in flight, adapted to the backend the way TCP Vegas adapts a window: each
 * round (as many completions as the limit) compares the round's mean latency with the lowest seen.
 * Latency near the floor means the reads are not queueing, so more in flight buys throughput (a
 * store far away, S3, a busy NVMe with idle queues): the limit grows. Latency well above the floor
 * means reads queue behind each other in the device: the limit shrinks. Between the two it holds. A
 * round at the lowest limit re-learns the floor. Thread-safe.
 */
public final class InFlightLimit {
  /** Reads queued beyond the device's parallelism below which the limit grows (Vegas alpha). */
  private static final double GROW_BELOW = 0.25;

  /** ... and above which it shrinks (Vegas beta), as fractions of the limit. */
  private static final double SHRINK_ABOVE = 0.6;

  private final int min;
  private final int max;
  private int limit;
  private double floorNanos = Double.MAX_VALUE;
  private long roundCount;
  private double roundSumNanos;

  public InFlightLimit(int min, int max, int initial) {
    if (min < 1 || max < min || initial < min || initial > max) {
      throw new IllegalArgumentException(
          "in-flight limits min=" + min + " max=" + max + " initial=" + initial + " out of order");
    }
    this.min = min;
    this.max = max;
    this.limit = initial;
  }

  public synchronized int limit() {
    return limit;
  }

  /** The lowest round latency seen, in nanoseconds; 0 before the first. */
  public synchronized long floorNanos() {
    return floorNanos == Double.MAX_VALUE ? 0 : (long) floorNanos;
  }

  /** One read completed after {@code latencyNanos} from issue. */
  public synchronized void onComplete(long latencyNanos) {
    roundSumNanos += Math.max(1, latencyNanos);
    if (++roundCount < limit) {
      return;
    }
    double mean = roundSumNanos / roundCount;
    roundCount = 0;
    roundSumNanos = 0;
    // At the floor of the limit nothing queues: that round's latency is the device's own, which
    // re-learns the floor after the device itself got slower (a busier disk, a farther store).
    floorNanos = limit == min ? mean : Math.min(floorNanos, mean);
    // Little's law: with the floor as the unqueued latency, limit * (1 - floor / mean) reads of
    // the round were waiting behind others rather than being served.
    double queued = limit * (1 - floorNanos / mean);
    if (queued < GROW_BELOW * limit) {
      limit = Math.min(max, limit + Math.max(1, limit / 4));
    } else if (queued > SHRINK_ABOVE * limit) {
      limit = Math.max(min, limit - Math.max(1, limit / 5));
    }
  }
}
