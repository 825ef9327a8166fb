package io.sluice.prefetch;

import java.util.concurrent.atomic.LongAdder;

/**
 * A prefetcher's counters: reads issued and bytes read (gaps and kept neighbours included), reads
 * that covered several samples, samples read ahead, neighbours kept because the plan needs them
 * soon, samples found cached already (reuse from an earlier epoch or another rank), samples that
 * did not fit the cache, failed reads, the spill tier's use and the peers'. Thread-safe.
 */
public final class PrefetchStats {
  final LongAdder reads = new LongAdder();
  final LongAdder bytesRead = new LongAdder();
  final LongAdder coalescedReads = new LongAdder();
  final LongAdder samplesRead = new LongAdder();
  final LongAdder neighboursKept = new LongAdder();
  final LongAdder alreadyCached = new LongAdder();
  final LongAdder rejected = new LongAdder();
  final LongAdder failedReads = new LongAdder();
  final LongAdder readNanos = new LongAdder();
  final LongAdder spillHits = new LongAdder();
  final LongAdder spilled = new LongAdder();
  final LongAdder peerHits = new LongAdder();
  final LongAdder peerBytes = new LongAdder();
  final LongAdder peerFallbacks = new LongAdder();

  public Snapshot snapshot(int inFlight, int inFlightLimit, long windowBytes) {
    return new Snapshot(
        reads.sum(),
        bytesRead.sum(),
        coalescedReads.sum(),
        samplesRead.sum(),
        neighboursKept.sum(),
        alreadyCached.sum(),
        rejected.sum(),
        failedReads.sum(),
        readNanos.sum(),
        spillHits.sum(),
        spilled.sum(),
        peerHits.sum(),
        peerBytes.sum(),
        peerFallbacks.sum(),
        inFlight,
        inFlightLimit,
        windowBytes);
  }

  /**
   * @param readNanos the sum of every read's latency (issue to completion)
   * @param spillHits samples read ahead from the spill tier instead of the backend
   * @param spilled samples written to the spill tier as they were read
   * @param peerHits samples read ahead from a peer daemon's cache instead of the backend
   * @param peerBytes their bytes
   * @param peerFallbacks samples asked of a peer that came from the backend after all (not held
   *     there, the peer down or slow)
   * @param inFlight reads in flight now (the queue depth)
   * @param inFlightLimit the adaptive limit now
   * @param windowBytes bytes read ahead and not yet consumed now
   */
  public record Snapshot(
      long reads,
      long bytesRead,
      long coalescedReads,
      long samplesRead,
      long neighboursKept,
      long alreadyCached,
      long rejected,
      long failedReads,
      long readNanos,
      long spillHits,
      long spilled,
      long peerHits,
      long peerBytes,
      long peerFallbacks,
      int inFlight,
      int inFlightLimit,
      long windowBytes) {
    /** Mean read latency in microseconds, 0 before the first read. */
    public double meanReadMicros() {
      return reads == 0 ? 0 : readNanos / 1e3 / reads;
    }
  }
}
