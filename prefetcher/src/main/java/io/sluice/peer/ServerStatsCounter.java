package io.sluice.peer;

import java.util.concurrent.atomic.LongAdder;

/** A peer server's counters, bumped on its transport threads. */
final class ServerStatsCounter {
  final LongAdder fetches = new LongAdder();
  final LongAdder samplesSent = new LongAdder();
  final LongAdder samplesMissed = new LongAdder();
  final LongAdder bytesSent = new LongAdder();
  final LongAdder badRequests = new LongAdder();

  PeerServerStats snapshot() {
    return new PeerServerStats(
        fetches.sum(), samplesSent.sum(), samplesMissed.sum(), bytesSent.sum(), badRequests.sum());
  }
}
