package io.sluice.peer;

import java.lang.foreign.MemorySegment;
import java.util.logging.Level;
import java.util.logging.Logger;

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

  /** What {@link #copyInto} copied: samples and bytes. */
  record Copied(int samples, long bytes) {}

  /**
   * Copies the samples of {@code fetch} that {@code held} lends into {@code dst}, back to back from
   * offset 0 while they fit, ending each lease right after its copy (a peer that stops reading
   * never holds this node's cache memory). {@code lengths[i]} gets the bytes copied for sample i,
   * or -1 when it is not held, is held with another length than the asker's index says (not the
   * same object), does not fit, or lending it failed (logged, naming the sample: the asker reads it
   * from storage, the other samples still go). Every transport's server answers a fetch so.
   */
  static Copied copyInto(
      HeldSamples held, PeerWire.Fetch fetch, MemorySegment dst, int[] lengths, String who) {
    int sent = 0;
    long at = 0;
    for (int i = 0; i < fetch.ids().length; i++) {
      lengths[i] = -1;
      Lease lease;
      try {
        lease = held.lend(fetch.dataset(), fetch.ids()[i]);
      } catch (RuntimeException e) {
        Logger.getLogger(HeldSamples.class.getName())
            .log(
                Level.WARNING,
                who + ": lending sample " + fetch.ids()[i] + " of dataset=" + fetch.dataset(),
                e);
        continue;
      }
      if (lease == null) {
        continue;
      }
      try (lease) {
        long size = lease.bytes().byteSize();
        if (size != fetch.lengths()[i] || size > dst.byteSize() - at) {
          continue;
        }
        MemorySegment.copy(lease.bytes(), 0, dst, at, size);
        lengths[i] = (int) size;
        at += size;
        sent++;
      }
    }
    return new Copied(sent, at);
  }
}
