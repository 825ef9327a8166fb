package io.sluice.cache;

import java.util.LinkedHashSet;

/**
 * Exact least-recently-used: evicts the unpinned sample whose last use ended longest ago. A pinned
 * sample leaves the order and rejoins it as the most recent when its last pin is released, so
 * recency is the time of last release (the same as the time of use for short pins). A baseline for
 * {@link BeladyPolicy}. Not thread-safe: the cache calls it under its lock.
 */
public final class LruPolicy implements EvictionPolicy {
  private final LinkedHashSet<Long> order = new LinkedHashSet<>(); // least recent first
  private boolean attached;

  @Override
  public String name() {
    return "lru";
  }

  @Override
  public void attach(long budgetBytes) {
    if (attached) {
      throw new IllegalStateException("policy=lru is already attached to a cache");
    }
    attached = true;
  }

  @Override
  public void onInsert(long sampleId, long sizeBytes) {
    order.add(sampleId);
  }

  @Override
  public void onPin(long sampleId) {
    order.remove(sampleId);
  }

  @Override
  public void onHit(long sampleId) {}

  @Override
  public void onUnpin(long sampleId) {
    order.add(sampleId);
  }

  @Override
  public void onRemove(long sampleId) {
    order.remove(sampleId);
  }

  @Override
  public long victim() {
    return order.isEmpty() ? NO_VICTIM : order.getFirst();
  }
}
