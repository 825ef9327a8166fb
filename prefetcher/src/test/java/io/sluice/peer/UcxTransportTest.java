package io.sluice.peer;

import org.junit.jupiter.api.Assumptions;

/**
 * The conformance suite over UCX (TCP underneath here); a small staging region makes fetches queue
 * for slots.
 */
class UcxTransportTest extends PeerTransportConformance {
  @Override
  PeerTransport newTransport() {
    try {
      return UcxTransport.create(8L << 20);
    } catch (PeerException e) {
      Assumptions.abort("ucx unavailable here: " + e.getMessage());
      throw new AssertionError(e);
    }
  }
}
