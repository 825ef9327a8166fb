package io.sluice.cache;

/**
 * A consistent snapshot of a {@link SampleCache}'s counters. Byte figures count allocated bytes
 * (each sample's length rounded up to the cache's alignment), the unit the budget is kept in.
 *
 * @param hits {@link SampleCache#pin} calls that found the sample
 * @param misses {@link SampleCache#pin} calls that did not
 * @param evictions samples the policy removed to make room
 * @param rejections puts and reservations refused because the bytes could not fit
 * @param entries samples cached now (committed; reservations not counted)
 * @param usedBytes bytes allocated to cached samples and open reservations
 * @param pinnedBytes bytes of samples pinned now
 * @param slabBytes bytes of off-heap slabs taken so far (never more than the budget)
 * @param budgetBytes the hard limit
 */
public record CacheStats(
    long hits,
    long misses,
    long evictions,
    long rejections,
    long entries,
    long usedBytes,
    long pinnedBytes,
    long slabBytes,
    long budgetBytes) {

  /** Hits over lookups; 0 before the first lookup. */
  public double hitRate() {
    long lookups = hits + misses;
    return lookups == 0 ? 0 : (double) hits / lookups;
  }
}
