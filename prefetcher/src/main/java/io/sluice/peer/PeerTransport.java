package io.sluice.peer;

import java.io.IOException;
import java.net.InetSocketAddress;

/**
 * A wire between daemons that moves cached samples: {@code ucx} (one-sided gets from registered
 * memory; verbs where there is an RDMA device, TCP here), {@code tcp} (Netty) and {@code disni}
 * (verbs only). One SPI, one conformance suite ({@code PeerTransportConformance}). Implementations
 * are thread-safe; closing the transport closes every server and channel it made.
 */
public interface PeerTransport extends AutoCloseable {
  /** The name {@code peer.transport} selects, metrics and logs report. */
  String name();

  /**
   * Starts answering peers' fetches on {@code bind} (port 0: any) from {@code held}.
   *
   * @throws IOException when the address cannot be bound
   */
  PeerServer serve(InetSocketAddress bind, HeldSamples held) throws IOException;

  /**
   * Opens one path to a peer's server. Connecting may finish lazily; a peer that is not there fails
   * the first fetch, not this call.
   *
   * @throws IOException when the address cannot be resolved or a connection cannot even start
   */
  PeerChannel connect(InetSocketAddress address) throws IOException;

  @Override
  void close();
}
