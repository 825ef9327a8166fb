package io.sluice.prefetch;

/**
 * How many reads to keep in flight, found by climbing on measured throughput: each round (as many
 * completions as the limit) gives reads per second at the current limit. A step up that pays (5%
 * more throughput) is kept and followed by another; one that does not is undone. A step down that
 * costs nothing (within 5%) is kept, since fewer reads in flight hold less memory and queue less;
 * one that costs is undone. After a few rounds at rest the limit probes again, alternating up and
 * down, so it follows a device that got busier or a store that got farther. A backend whose latency
 * is high but does not grow with depth (an object store) climbs to the ceiling; a local device
 * settles near the depth past which it stops serving more. Thread-safe.
 */
public final class InFlightLimit {
  private static final double GAIN = 1.05;
  private static final double LOSS = 0.95;
  private static final int REST_ROUNDS = 6;

  private final int min;
  private final int max;
  private int limit;

  private long roundStart = -1;
  private int roundCount;
  private boolean roundBound; // a read waited for a slot during this round
  private double lastRate; // reads per nanosecond at lastLimit
  private int lastLimit;
  private int rest;
  private boolean probeUpNext = true;

  public InFlightLimit(int min, int max, int initial) {
    if (min < 1 || max < min || initial < min || initial > max) {
      throw new IllegalArgumentException(
          "in-flight limits min=" + min + " max=" + max + " initial=" + initial + " out of order");
    }
    this.min = min;
    this.max = max;
    this.limit = initial;
    this.lastLimit = initial;
  }

  public synchronized int limit() {
    return limit;
  }

  /**
   * A read had to wait for a slot: the limit, not the demand, paced this round. Rounds without one
   * say nothing about the device (the consumers were slower than it) and change nothing.
   */
  public synchronized void onBlocked() {
    roundBound = true;
  }

  /** One read completed now. */
  public void onComplete() {
    onComplete(System.nanoTime());
  }

  /** One read completed at {@code nowNanos} ({@link System#nanoTime()}'s clock). */
  public synchronized void onComplete(long nowNanos) {
    if (roundStart < 0) {
      roundStart = nowNanos;
      return;
    }
    if (++roundCount < limit) {
      return;
    }
    double rate = roundCount / (double) Math.max(1, nowNanos - roundStart);
    roundStart = nowNanos;
    roundCount = 0;
    if (!roundBound) {
      return; // demand-limited: throughput here measures the consumers, not the device
    }
    roundBound = false;
    if (lastRate == 0) {
      accept(rate, up());
      return;
    }
    if (limit > lastLimit) {
      if (rate > lastRate * GAIN) {
        accept(rate, up());
      } else {
        settle(lastLimit, false);
      }
    } else if (limit < lastLimit) {
      if (rate >= lastRate * LOSS) {
        accept(rate, down());
      } else {
        settle(lastLimit, true);
      }
    } else if (--rest <= 0) {
      lastRate = rate;
      limit = probeUpNext ? up() : down();
      probeUpNext = !probeUpNext;
      if (limit == lastLimit) {
        rest = REST_ROUNDS; // at a bound: nothing to probe that way
      }
    } else {
      lastRate = Math.max(lastRate * 0.9, rate); // at rest: track the current rate
    }
  }

  private void accept(double rate, int next) {
    lastRate = rate;
    lastLimit = limit;
    limit = next;
    if (limit == lastLimit) {
      rest = REST_ROUNDS;
    }
  }

  private void settle(int back, boolean probeUp) {
    limit = back;
    rest = REST_ROUNDS;
    probeUpNext = probeUp;
  }

  private int up() {
    return Math.min(max, limit + Math.max(1, limit / 4));
  }

  private int down() {
    return Math.max(min, limit - Math.max(1, limit / 5));
  }
}
