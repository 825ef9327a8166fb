package io.sluice.peer;

import java.net.InetSocketAddress;
import java.util.Objects;

/**
 * One way to reach a peer's daemon (one per NIC): its address, unresolved when given as a host
 * name, and the share of traffic it should carry relative to the node's other paths.
 */
public record PeerPath(InetSocketAddress address, double weight) {
  public PeerPath {
    Objects.requireNonNull(address, "address");
    // !(weight > 0) also catches NaN.
    if (!(weight > 0) || Double.isInfinite(weight)) {
      throw new IllegalArgumentException("weight=" + weight + " must be finite and > 0");
    }
  }

  /** A path of weight 1. */
  public PeerPath(InetSocketAddress address) {
    this(address, 1);
  }
}
