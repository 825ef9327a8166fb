package io.sluice.cache;

/**
 * Chooses which cached sample {@link SampleCache} evicts when it needs room. A policy sees only
 * evictable samples: a sample becomes a candidate at {@link #onInsert} and at its last {@link
 * #onUnpin}, and stops being one at {@link #onPin} and {@link #onRemove}. The cache calls every
 * method under its lock, so implementations need no synchronisation; one instance serves one cache
 * (the cache calls {@link #attach} once, at build).
 *
 * <p>Implementations: {@link BeladyPolicy} (farthest next use, from the plan), {@link LruPolicy}
 * (exact least recently used), {@link CaffeinePolicy} (Caffeine's W-TinyLFU ordering).
 */
public interface EvictionPolicy {
  /** What {@link #victim()} answers when no sample can be evicted. */
  long NO_VICTIM = -1;

  /** The name stats and benchmarks print: {@code "belady"}, {@code "lru"}, {@code "caffeine"}. */
  String name();

  /**
   * Binds the policy to a cache with this byte budget. Called once, before any other call; a policy
   * already attached to another cache must throw {@link IllegalStateException}.
   */
  void attach(long budgetBytes);

  /** The cache's budget changed (it grows, or drains slabs down to it). */
  default void resize(long budgetBytes) {}

  /** A sample was committed to the cache, unpinned: it is now a candidate. */
  void onInsert(long sampleId, long sizeBytes);

  /** A reader asked for a sample that is not cached. */
  default void onMiss(long sampleId) {}

  /**
   * A reader pinned a sample that had no pins: it is no longer a candidate until {@link #onUnpin}.
   * Called before the {@link #onHit} of the same access.
   */
  void onPin(long sampleId);

  /** A reader found and pinned a cached sample: one use, at the cache's current step. */
  void onHit(long sampleId);

  /** The last pin on a sample was released: it is a candidate again. */
  void onUnpin(long sampleId);

  /** A candidate left the cache (evicted). */
  void onRemove(long sampleId);

  /**
   * The candidate to evict next, or {@link #NO_VICTIM} when there is none. Does not remove it: the
   * cache evicts it and then calls {@link #onRemove}.
   */
  long victim();

  /**
   * The node of {@link #victim()} when the policy keeps its candidates as the nodes the cache
   * inserted ({@link #onInsertNode}), so the cache finds the victim's entry without a look-up; null
   * otherwise, or when there is no victim.
   */
  default PolicyNode victimNode() {
    return null;
  }

  /**
   * The step at which {@link #victim()} is next needed, for policies that know it (Belady), so that
   * a read-ahead never evicts a sample needed sooner than the one it brings; {@link NextUse#NEVER}
   * for policies that do not know (LRU, Caffeine), whose victims are always fair game. Undefined
   * when there is no victim.
   */
  default long victimNextUse() {
    return NextUse.NEVER;
  }

  /**
   * As {@link #onInsert}, returning the policy's own record of the sample (or null), which the
   * cache keeps with its entry and hands back to the token variants below: a policy that keys its
   * records by id then saves a lookup on every pin, hit, unpin and removal.
   */
  default Object onInsertToken(long sampleId, long sizeBytes) {
    onInsert(sampleId, sizeBytes);
    return null;
  }

  /**
   * As {@link #onInsertToken} for a sample whose cache record is {@code node}: a policy that keeps
   * per-sample state may keep it in the node's fields and return the node as the token ({@link
   * BeladyPolicy} does). The default ignores the node.
   */
  default Object onInsertNode(PolicyNode node, long sizeBytes) {
    return onInsertToken(node.sampleId, sizeBytes);
  }

  /** {@link #onPin} with the token from {@link #onInsertToken}. */
  default void onPin(long sampleId, Object token) {
    onPin(sampleId);
  }

  /** {@link #onHit} with the token from {@link #onInsertToken}. */
  default void onHit(long sampleId, Object token) {
    onHit(sampleId);
  }

  /** {@link #onUnpin} with the token from {@link #onInsertToken}. */
  default void onUnpin(long sampleId, Object token) {
    onUnpin(sampleId);
  }

  /** {@link #onRemove} with the token from {@link #onInsertToken}. */
  default void onRemove(long sampleId, Object token) {
    onRemove(sampleId);
  }

  /** The consumers reached {@code step} (never called with a smaller step than before). */
  default void advanceTo(long step) {}

  /**
   * The plan changed (a new epoch's look-ahead, whose steps are numbered from its own start):
   * answer next uses from {@code nextUse} from now on, the current step being {@code currentStep}.
   */
  default void replan(NextUse nextUse, long currentStep) {}

  /**
   * As {@link #replan(NextUse, long)}, where the caller vouches that the new plan numbers steps as
   * the old one did and answers every next use that the old one put in {@code [keptFrom,
   * keptUntil)} with that same step (the look-ahead moved on one epoch: the uses of the epoch both
   * plans cover did not change). A policy may keep those answers instead of recomputing them.
   */
  default void replan(NextUse nextUse, long currentStep, long keptFrom, long keptUntil) {
    replan(nextUse, currentStep);
  }
}
