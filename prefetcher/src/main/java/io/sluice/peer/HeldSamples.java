package io.sluice.peer;

import java.lang.foreign.MemorySegment;

/**
 * What a daemon lends its peers: the samples its caches hold. Called on transport threads; must not
 * block for long.
 */
@FunctionalInterface
public interface HeldSamples {
  /**
   * Pins sample {@code id} of {@code dataset} so it stays put until the lease is closed, or returns
   * null when it is not held (unknown dataset included).
   */
  Lease lend(String dataset, long id);

  /** A pinned sample's bytes, valid until {@link #close()}. */
  interface Lease extends AutoCloseable {
    MemorySegment bytes();

    @Override
    void close();
  }

  /** Holds nothing. */
  HeldSamples NONE = (dataset, id) -> null;
}
