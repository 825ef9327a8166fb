package io.sluice.peer;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;

/**
 * One path to one peer's server (a connection over one NIC). Thread-safe; many fetches may be in
 * flight at once.
 */
public interface PeerChannel extends AutoCloseable {
  /**
   * Asks the peer for samples {@code ids} of {@code dataset}. Completes with {@code filled}, where
   * {@code filled[i]} says whether {@code dsts[i]} now holds sample {@code ids[i]}: a sample the
   * peer does not hold, or holds with another length than {@code dsts[i].byteSize()} (a changed
   * object), is left unfilled. {@code dsts} belong to the fetch until the future completes.
   *
   * <p>Fails (exceptionally, with a {@link PeerException} naming the peer) when the path fails: the
   * peer is gone, the connection broke, the answer did not decode, or no answer came within the
   * transport's fetch timeout. Never throws. Once the future has completed, however it completed,
   * the transport writes nothing more into {@code dsts}: a caller may read into them from
   * elsewhere.
   */
  CompletableFuture<boolean[]> fetch(String dataset, long[] ids, MemorySegment[] dsts);

  /** The peer's address this path leads to, for logs and metrics. */
  String describe();

  /** Fails fetches in flight and releases what the channel holds. */
  @Override
  void close();
}
