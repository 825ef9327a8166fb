package io.sluice.cache.bench;

import io.sluice.cache.BeladyPolicy;
import io.sluice.cache.Handle;
import io.sluice.cache.NextUse;
import io.sluice.cache.Reservation;
import io.sluice.cache.SampleCache;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The cache work of a daemon whose cache holds half the dataset (the shape of {@code ./sluice bench
 * delivery}): each step's batch of 64 samples, taken from a plan that scatters every sample over
 * the epoch, the ones not cached reserved and committed (each evicting Belady's victim), then the
 * batch pinned and released, as the read-ahead scheduler, the read completions and a stream do.
 * Scores are samples/s (ops are samples).
 *
 * <p>Run like {@link PinBenchmark}: {@code ./sluice bench micro EvictBenchmark}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class EvictBenchmark {
  private static final int BATCH = 64;
  private static final long SAMPLE_BYTES = 4096;

  /** Samples the cache holds (a power of two); the dataset has twice as many. */
  @Param({"262144"})
  public int cached;

  private SampleCache cache;
  private final long[] ids = new long[BATCH];
  private final long[] missing = new long[BATCH];
  private final Handle[] handles = new Handle[BATCH];
  private long stepsPerEpoch;
  private long inverse;
  private long step;

  @Setup(Level.Trial)
  public void setUp() {
    if (Integer.bitCount(cached) != 1 || cached < BATCH) {
      throw new IllegalArgumentException("cached=" + cached + " must be a power of two >= 64");
    }
    long samples = 2L * cached;
    stepsPerEpoch = samples / BATCH;
    // Sample s is used at step (s * 40503) mod steps of each epoch: scattered, as a shuffle is.
    // Step t's batch is then the samples congruent to t * 40503^-1 modulo the steps.
    inverse = 1;
    for (int i = 0; i < 64; i++) {
      inverse *= 2 - 40503L * inverse; // Newton's iteration: the inverse modulo 2^64
    }
    NextUse nextUse =
        (id, from) -> {
          long at = (id * 40503L) % stepsPerEpoch;
          long epoch = from / stepsPerEpoch;
          long s = epoch * stepsPerEpoch + at;
          return s >= from ? s : s + stepsPerEpoch;
        };
    cache =
        SampleCache.builder()
            .budgetBytes(cached * SAMPLE_BYTES)
            .policy(new BeladyPolicy(nextUse))
            .preallocate(true)
            .build();
    for (long id = 0; id < cached; id++) {
      try (Reservation r = cache.reserve(id * 2, SAMPLE_BYTES)) {
        r.commit();
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    cache.close();
  }

  /** One step: 64 samples, about half of them read into the cache, then pinned and released. */
  @Benchmark
  @OperationsPerInvocation(BATCH)
  public int step() {
    long first = (step * inverse) & (stepsPerEpoch - 1);
    for (int i = 0; i < BATCH; i++) {
      ids[i] = first + i * stepsPerEpoch;
      missing[i] = ids[i];
      handles[i] = null;
    }
    int n = cache.retainUncached(missing, BATCH);
    for (int i = 0; i < n; i++) {
      try (Reservation r = cache.reserve(missing[i], SAMPLE_BYTES)) {
        if (r != null) {
          r.commit();
        }
      }
    }
    int pinned = cache.pinCached(ids, BATCH, handles);
    cache.releaseAll(handles);
    cache.advanceTo(++step);
    return pinned;
  }
}
