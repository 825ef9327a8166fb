package io.sluice.prefetch;

import io.sluice.cache.LongMap;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The samples being read, each with the future its read completes (committed or given up): asked by
 * the scheduler for every sample of every step it plans, filled and emptied by the reads, and
 * waited on by streams. A {@code ConcurrentHashMap<Long, ...>} boxed each of those ids (15% of the
 * scheduler thread's allocation at the default bench shape); here the ids stay primitive, in
 * stripes of {@link LongMap} each under its own monitor (the threads touching one stripe at once
 * are few).
 */
final class LoadingSamples {
  private static final int STRIPES = 64; // a power of two

  private final List<LongMap<CompletableFuture<Void>>> stripes = new ArrayList<>(STRIPES);

  LoadingSamples() {
    for (int i = 0; i < STRIPES; i++) {
      stripes.add(new LongMap<>());
    }
  }

  private LongMap<CompletableFuture<Void>> stripe(long id) {
    // The low bits, mixed: a map's own slot comes from the top bits of another mix.
    return stripes.get((int) (id ^ (id >>> 7) ^ (id >>> 19)) & (STRIPES - 1));
  }

  boolean containsKey(long id) {
    LongMap<CompletableFuture<Void>> m = stripe(id);
    synchronized (m) {
      return m.containsKey(id);
    }
  }

  /** The future of {@code id}'s read, or null when it is not being read. */
  CompletableFuture<Void> get(long id) {
    LongMap<CompletableFuture<Void>> m = stripe(id);
    synchronized (m) {
      return m.get(id);
    }
  }

  void put(long id, CompletableFuture<Void> done) {
    LongMap<CompletableFuture<Void>> m = stripe(id);
    synchronized (m) {
      m.put(id, done);
    }
  }

  /** Forgets {@code id} if its read is still {@code done} (not a later read of the same id). */
  void remove(long id, CompletableFuture<Void> done) {
    LongMap<CompletableFuture<Void>> m = stripe(id);
    synchronized (m) {
      if (m.get(id) == done) {
        m.remove(id);
      }
    }
  }
}
