package io.sluice.peer;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;

/**
 * What one job's read-ahead asks of its peers: which node should hold a sample (from the plan, no
 * messages), and the sample itself. Implementations are thread-safe.
 */
public interface PeerSource {
  /**
   * The node whose cache should hold {@code sampleId} when epoch {@code epoch} needs it (the node
   * that consumed it the epoch before), or -1: read it from storage (epoch 0, this node, a node
   * that is down).
   */
  int holderOf(long sampleId, long epoch);

  /**
   * The step of epoch {@code epoch + 1} at which another node will ask this node for {@code
   * sampleId}, which this node consumes in {@code epoch}; -1 when nobody will. The cache keeps such
   * samples over ones nobody needs: one storage read fewer for the job.
   */
  long lentAtStep(long sampleId, long epoch);

  /**
   * Fetches samples from {@code node} as {@link PeerChannel#fetch} does, with the group's timeout.
   * Completes exceptionally when the node cannot be reached; the caller reads from storage.
   */
  CompletableFuture<boolean[]> fetch(int node, long[] ids, MemorySegment[] dsts);
}
