package io.sluice.s3;

import java.util.Arrays;

/**
 * Recent latencies of completed ranged reads, by size class (powers of four from 16 KiB), and the
 * delay after which a read of that size is far slower than its peers and worth a hedge.
 * Thread-safe.
 */
final class LatencyWindow {
  /** A read this many times slower than the median of its size class gets a hedge. */
  static final int HEDGE_FACTOR = 4;

  /** Never hedge sooner: below this a second request costs more than it saves. */
  static final long MIN_HEDGE_NANOS = 20_000_000L;

  /** Hedging starts once a class has this many samples. */
  static final int MIN_SAMPLES = 32;

  private static final int CLASSES = 6;
  private static final int WINDOW = 128;

  private final long[][] samples = new long[CLASSES][WINDOW];
  private final int[] counts = new int[CLASSES];
  private final long[] hedgeNanos = new long[CLASSES];

  static int sizeClass(long bytes) {
    int c = 0;
    for (long limit = 16 << 10; bytes > limit && c < CLASSES - 1; limit <<= 2) {
      c++;
    }
    return c;
  }

  synchronized void record(long bytes, long nanos) {
    int c = sizeClass(bytes);
    samples[c][counts[c] % WINDOW] = nanos;
    counts[c]++;
    if (counts[c] >= MIN_SAMPLES && counts[c] % 16 == 0) {
      int n = Math.min(counts[c], WINDOW);
      long[] copy = Arrays.copyOf(samples[c], n);
      Arrays.sort(copy);
      hedgeNanos[c] = Math.max(MIN_HEDGE_NANOS, HEDGE_FACTOR * copy[n / 2]);
    }
  }

  /** How long a read of {@code bytes} may take before it is hedged; 0 while too little is known. */
  synchronized long hedgeDelayNanos(long bytes) {
    return hedgeNanos[sizeClass(bytes)];
  }
}
