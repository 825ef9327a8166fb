package io.sluice.peer;

import org.junit.jupiter.api.Assumptions;

/**
 * The conformance suite over UCX (TCP underneath here). A small staging region makes concurrent
 * fetches queue for slots.
 */
class UcxTransportTest extends PeerTransportConformance {
  @Override
  PeerTransport newTransport(long fetchTimeoutMs) {
    try {
      return UcxTransport.create(8L << 20, fetchTimeoutMs);
    } catch (PeerException e) {
      Assumptions.abort("ucx unavailable here: " + e.getMessage());
      throw new AssertionError(e);
    }
  }
}
