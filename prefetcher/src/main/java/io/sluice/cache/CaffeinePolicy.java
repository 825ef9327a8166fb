package io.sluice.cache;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.Policy;
import java.util.ArrayDeque;
import java.util.HashSet;
import java.util.Map;

/**
 * Caffeine's W-TinyLFU as a baseline for {@link BeladyPolicy} (Einziger, Friedman and Manes,
 * "TinyLFU: A highly efficient cache admission policy", ACM ToS 2017). A shadow Caffeine cache of
 * id to size, weighted by allocated bytes, bounded by the budget and maintained on the calling
 * thread, sees the same hits, misses and inserts as the sample cache; the victim is the first
 * unpinned entry of {@code Policy.eviction().coldest()}: the window and probation segments' LRU
 * ends merged by TinyLFU frequency, then the protected segment. Because the sample cache evicts
 * before it inserts, the shadow never exceeds its maximum and Caffeine's own admission duel
 * (candidate against victim) never runs; should it evict anyway, its victims go first. Not
 * thread-safe: the cache calls it under its lock.
 */
public final class CaffeinePolicy implements EvictionPolicy {
  private Cache<Long, Long> shadow;
  private Policy.Eviction<Long, Long> eviction;
  private final HashSet<Long> pinned = new HashSet<>();
  private final ArrayDeque<Long> evictedByCaffeine = new ArrayDeque<>();

  @Override
  public String name() {
    return "caffeine";
  }

  @Override
  public void attach(long budgetBytes) {
    if (shadow != null) {
      throw new IllegalStateException("policy=caffeine is already attached to a cache");
    }
    shadow =
        Caffeine.newBuilder()
            .maximumWeight(budgetBytes)
            .weigher((Long id, Long size) -> (int) Math.min(size, Integer.MAX_VALUE))
            .executor(Runnable::run)
            .evictionListener(
                (Long id, Long size, com.github.benmanes.caffeine.cache.RemovalCause cause) ->
                    evictedByCaffeine.add(id))
            .build();
    eviction = shadow.policy().eviction().orElseThrow();
  }

  @Override
  public void resize(long budgetBytes) {
    eviction.setMaximum(budgetBytes); // what Caffeine evicts to fit goes first, as always
  }

  @Override
  public void onInsert(long sampleId, long sizeBytes) {
    shadow.put(sampleId, sizeBytes);
  }

  @Override
  public void onMiss(long sampleId) {
    shadow.getIfPresent(sampleId); // as a Caffeine user would: feeds the window's hill climber
  }

  @Override
  public void onPin(long sampleId) {
    pinned.add(sampleId);
  }

  @Override
  public void onHit(long sampleId) {
    shadow.getIfPresent(sampleId);
  }

  @Override
  public void onUnpin(long sampleId) {
    pinned.remove(sampleId);
  }

  @Override
  public void onRemove(long sampleId) {
    shadow.invalidate(sampleId);
    evictedByCaffeine.remove(sampleId);
  }

  @Override
  public long victim() {
    for (Long id : evictedByCaffeine) {
      if (!pinned.contains(id)) {
        return id;
      }
    }
    return eviction
        .coldest(
            entries ->
                entries.map(Map.Entry::getKey).filter(id -> !pinned.contains(id)).findFirst())
        .orElse(NO_VICTIM);
  }
}
