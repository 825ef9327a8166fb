package io.sluice.prefetch;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * One stream's view of the read engine: batches taken, samples served from memory (hits) or read on
 * demand (misses), stalls (a batch asked for before all of it was read) and the time they cost, and
 * the lead (steps read ahead of consumption). Thread-safe.
 */
public final class StreamStats {
  private final LongAdder batches = new LongAdder();
  private final LongAdder hits = new LongAdder();
  private final LongAdder misses = new LongAdder();
  private final LongAdder stalls = new LongAdder();
  private final LongAdder stallNanos = new LongAdder();
  private final LongAdder firstStallNanos = new LongAdder();
  private final AtomicLong lead = new AtomicLong();
  private final StreamStats parent;

  /** Counters of their own. */
  public StreamStats() {
    this(null);
  }

  /** Counters that also add every batch into {@code parent} (null: none), such as a daemon's. */
  public StreamStats(StreamStats parent) {
    this.parent = parent;
  }

  void batch(int hitCount, int missCount, long stallNs, boolean first) {
    if (parent != null) {
      parent.batch(hitCount, missCount, stallNs, first);
    }
    batches.increment();
    hits.add(hitCount);
    misses.add(missCount);
    if (stallNs > 0) {
      stalls.increment();
      stallNanos.add(stallNs);
      if (first) {
        firstStallNanos.add(stallNs);
      }
    }
  }

  void lead(long steps) {
    lead.set(steps);
  }

  public Snapshot snapshot() {
    return new Snapshot(
        batches.sum(),
        hits.sum(),
        misses.sum(),
        stalls.sum(),
        stallNanos.sum(),
        firstStallNanos.sum(),
        lead.get());
  }

  /**
   * @param stallNanos every stall's wait, the first batch's included
   * @param firstStallNanos the first batch's wait alone (nothing can be read ahead of it)
   * @param lead steps read ahead of the stream's consumption, when last asked
   */
  public record Snapshot(
      long batches,
      long hits,
      long misses,
      long stalls,
      long stallNanos,
      long firstStallNanos,
      long lead) {
    /** Stall time after the first batch. */
    public long stallNanosAfterFirst() {
      return stallNanos - firstStallNanos;
    }
  }
}
