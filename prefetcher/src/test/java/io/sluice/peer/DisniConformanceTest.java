package io.sluice.peer;

import org.junit.jupiter.api.Assumptions;

/**
 * The conformance suite over DiSNI verbs: runs where an RDMA device and libdisni.so exist, and is
 * skipped with the cause elsewhere (every machine here: see {@code DisniTransportTest} for what
 * runs without them).
 */
class DisniConformanceTest extends PeerTransportConformance {
  @Override
  PeerTransport newTransport(long fetchTimeoutMs) {
    try {
      return DisniTransport.create(fetchTimeoutMs);
    } catch (PeerException e) {
      Assumptions.abort("disni unavailable here: " + e.getMessage());
      throw new AssertionError(e);
    }
  }
}
