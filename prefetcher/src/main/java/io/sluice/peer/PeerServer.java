package io.sluice.peer;

import java.net.InetSocketAddress;

/** A transport's listening end, answering fetches from a daemon's caches. */
public interface PeerServer extends AutoCloseable {
  /** Where peers reach it (the bound port when 0 was asked for). */
  InetSocketAddress address();

  /** Fetches answered, samples sent, bytes sent since start. */
  PeerServerStats stats();

  /** Stops listening and drops connections; leases held for fetches in progress are released. */
  @Override
  void close();
}
