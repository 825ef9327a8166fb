package io.sluice.cache.bench;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.sluice.cache.Handle;
import io.sluice.cache.NextUse;
import io.sluice.cache.SampleCache;
import io.sluice.planner.DatasetLayout;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.LookAhead;
import io.sluice.planner.ShuffleMode;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.HashSet;
import java.util.TreeMap;

/**
 * One node's accesses over two epochs of a real plan (global shuffle), in need order, with the step
 * of each, and the replay of them through a cache the way a consumer uses it: pin, and on a miss
 * put. Shared by the policy tests and {@link CacheBenchmark}.
 */
public final class AccessTrace {
  /** Largest variable sample size. */
  public static final int MAX_SAMPLE_BYTES = 4096;

  private final long samples;
  private final LookAhead lookAhead;
  private final long[] sampleIds;
  private final long[] steps;
  private final int unitBytes;

  private AccessTrace(long samples, LookAhead lookAhead, long[] sampleIds, long[] steps, int unit) {
    this.samples = samples;
    this.lookAhead = lookAhead;
    this.sampleIds = sampleIds;
    this.steps = steps;
    this.unitBytes = unit;
  }

  /**
   * Epochs 0 and 1 of {@code samples} samples (one shard, global shuffle, {@code seed}), split over
   * {@code worldSize} ranks of {@code batchSize}, as the node holding {@code localRanks} needs
   * them. Samples have variable sizes ({@link #sizeBytes}).
   */
  public static AccessTrace of(
      long samples, int worldSize, int[] localRanks, int batchSize, long seed) {
    DatasetLayout layout = DatasetLayout.ofCount(samples);
    EpochPlan e0 =
        EpochPlan.of(
            GlobalSequence.of(layout, seed, 0, new ShuffleMode.Global()),
            worldSize,
            batchSize,
            false);
    EpochPlan e1 =
        EpochPlan.of(
            GlobalSequence.of(layout, seed, 1, new ShuffleMode.Global()),
            worldSize,
            batchSize,
            false);
    LookAhead lookAhead = LookAhead.of(e0, e1, localRanks);
    long[] ids = lookAhead.samplesForSteps(0, Math.toIntExact(lookAhead.horizonSteps()));
    long[] steps = new long[ids.length];
    int perStep = localRanks.length * batchSize;
    for (int i = 0; i < ids.length; i++) {
      steps[i] = i / perStep;
    }
    return new AccessTrace(samples, lookAhead, ids, steps, 0);
  }

  /** The same accesses with every sample {@code unitBytes} long. */
  public AccessTrace withUnitSize(int unitBytes) {
    return new AccessTrace(samples, lookAhead, sampleIds, steps, unitBytes);
  }

  /** A sample's length: {@code unitBytes}, or 512 to 4096 bytes from a hash of the id. */
  public int sizeBytes(long sampleId) {
    if (unitBytes > 0) {
      return unitBytes;
    }
    long h = sampleId * 0x9E3779B97F4A7C15L;
    h = (h ^ (h >>> 31)) * 0xBF58476D1CE4E5B9L;
    h ^= h >>> 29;
    return 512 + (int) Long.remainderUnsigned(h, MAX_SAMPLE_BYTES - 512 + 1);
  }

  /** All samples' bytes, needed or not: what "the cache holds 25%" is a share of. */
  public long totalBytes() {
    long sum = 0;
    for (long id = 0; id < samples; id++) {
      sum += sizeBytes(id);
    }
    return sum;
  }

  public int length() {
    return sampleIds.length;
  }

  public long[] sampleIds() {
    return sampleIds.clone();
  }

  public LookAhead lookAhead() {
    return lookAhead;
  }

  public NextUse nextUse() {
    return NextUse.of(lookAhead);
  }

  /** Hits and misses of one replay. */
  public record Result(long hits, long misses) {
    public double hitRate() {
      return (double) hits / (hits + misses);
    }
  }

  /**
   * Replays every access through {@code cache}: advance to its step, pin; on a miss put the
   * sample's bytes (a prefix of {@code source}, at least {@link #MAX_SAMPLE_BYTES} long).
   */
  public Result replay(SampleCache cache, MemorySegment source) {
    long hits = 0;
    long step = -1;
    for (int i = 0; i < sampleIds.length; i++) {
      if (steps[i] != step) {
        step = steps[i];
        cache.advanceTo(step);
      }
      long id = sampleIds[i];
      try (Handle h = cache.pin(id)) {
        if (h != null) {
          hits++;
        } else {
          cache.put(id, source.asSlice(0, sizeBytes(id)));
        }
      }
    }
    return new Result(hits, sampleIds.length - hits);
  }

  /**
   * The hits of Caffeine itself (W-TinyLFU with its own admission and eviction), bounded by {@code
   * budgetBytes} of sizes rounded up to {@code alignmentBytes}: the reference for {@link
   * io.sluice.cache.CaffeinePolicy}.
   */
  public Result replayCaffeine(long budgetBytes, int alignmentBytes) {
    Cache<Long, Integer> cache =
        Caffeine.newBuilder()
            .maximumWeight(budgetBytes)
            .weigher((Long id, Integer size) -> size)
            .executor(Runnable::run)
            .build();
    long hits = 0;
    for (long id : sampleIds) {
      if (cache.getIfPresent(id) != null) {
        hits++;
      } else {
        int size = sizeBytes(id);
        cache.put(id, (size + alignmentBytes - 1) & -alignmentBytes);
      }
    }
    return new Result(hits, sampleIds.length - hits);
  }

  /**
   * Belady's MIN per access (not per step) for unit sizes and {@code capacity} samples, in O(n log
   * n): the most hits any demand-paging cache of that capacity can get on this trace.
   */
  public long minHits(int capacity) {
    int n = sampleIds.length;
    int[] nextIndex = new int[n];
    HashMap<Long, Integer> seen = new HashMap<>();
    for (int i = n - 1; i >= 0; i--) {
      nextIndex[i] = seen.getOrDefault(sampleIds[i], Integer.MAX_VALUE);
      seen.put(sampleIds[i], i);
    }
    TreeMap<Integer, Long> byNext = new TreeMap<>(); // cached samples by next reference
    HashMap<Long, Integer> nextOf = new HashMap<>();
    long hits = 0;
    int never = Integer.MAX_VALUE;
    for (int i = 0; i < n; i++) {
      long x = sampleIds[i];
      Integer at = nextOf.remove(x);
      if (at != null) {
        hits++;
        byNext.remove(at);
      } else if (nextOf.size() == capacity) {
        nextOf.remove(byNext.pollLastEntry().getValue());
      }
      // Samples never referenced again get distinct keys above every index.
      int next = nextIndex[i] == Integer.MAX_VALUE ? never-- : nextIndex[i];
      nextOf.put(x, next);
      byNext.put(next, x);
    }
    return hits;
  }

  /**
   * Belady's MIN the slow, obvious way, for unit sizes and {@code capacity} samples: on a miss with
   * a full cache, scan the rest of {@code trace} for each cached sample's next reference and evict
   * the farthest. Demand paging: the missed sample is always loaded. Returns the hits.
   */
  public static long bruteForceMinHits(long[] trace, int capacity) {
    HashSet<Long> cached = new HashSet<>();
    long hits = 0;
    for (int i = 0; i < trace.length; i++) {
      long x = trace[i];
      if (cached.contains(x)) {
        hits++;
        continue;
      }
      if (cached.size() == capacity) {
        HashMap<Long, Integer> next = new HashMap<>();
        for (long y : cached) {
          next.put(y, Integer.MAX_VALUE);
        }
        for (int j = trace.length - 1; j > i; j--) {
          if (next.containsKey(trace[j])) {
            next.put(trace[j], j);
          }
        }
        long victim = -1;
        int farthest = -1;
        for (var e : next.entrySet()) {
          if (e.getValue() > farthest) {
            farthest = e.getValue();
            victim = e.getKey();
          }
        }
        cached.remove(victim);
      }
      cached.add(x);
    }
    return hits;
  }
}
