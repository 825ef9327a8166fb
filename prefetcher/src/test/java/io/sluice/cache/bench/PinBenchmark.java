package io.sluice.cache.bench;

import io.sluice.cache.BeladyPolicy;
import io.sluice.cache.Handle;
import io.sluice.cache.NextUse;
import io.sluice.cache.Reservation;
import io.sluice.cache.SampleCache;
import java.util.SplittableRandom;
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
 * The stream thread's share of the cache: a batch of cached samples pinned in one call and released
 * in one call, on a Belady cache holding {@code samples} entries whose next uses are scattered over
 * two epochs of steps, as a daemon stream's take and close do. Scores are samples/s (ops are
 * samples).
 *
 * <p>Run from the repository root (single thread, short), after the classpath step in {@link
 * CacheBenchmark}:
 *
 * <pre>
 * $JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED \
 *     -cp prefetcher/target/test-classes:prefetcher/target/classes:$(cat prefetcher/target/bench.cp) \
 *     org.openjdk.jmh.Main PinBenchmark -f 1 -wi 3 -w 2s -i 5 -r 2s -t 1
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class PinBenchmark {
  private static final int BATCH = 64;

  @Param({"262144"})
  public int samples;

  private SampleCache cache;
  private final SplittableRandom random = new SplittableRandom(7);
  private final long[] ids = new long[BATCH];
  private final Handle[] handles = new Handle[BATCH];
  private long step;

  @Setup(Level.Trial)
  public void setUp() {
    long stepsPerEpoch = samples / BATCH;
    // Sample s is used at step (s * 40503) mod steps of each epoch: scattered, as a shuffle is.
    NextUse nextUse =
        (id, from) -> {
          long at = (id * 40503L) % stepsPerEpoch;
          long epoch = from / stepsPerEpoch;
          long s = epoch * stepsPerEpoch + at;
          return s >= from ? s : s + stepsPerEpoch;
        };
    cache =
        SampleCache.builder()
            .budgetBytes((long) samples * 64)
            .policy(new BeladyPolicy(nextUse))
            .preallocate(true)
            .build();
    for (long id = 0; id < samples; id++) {
      try (Reservation r = cache.reserve(id, 64)) {
        r.commit();
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    cache.close();
  }

  /** One batch: 64 cached samples pinned, then released. */
  @Benchmark
  @OperationsPerInvocation(BATCH)
  public int pinAndRelease() {
    for (int i = 0; i < BATCH; i++) {
      ids[i] = random.nextInt(samples);
      handles[i] = null;
    }
    int pinned = cache.pinCached(ids, BATCH, handles);
    cache.releaseAll(handles);
    if ((++step & 15) == 0) {
      cache.advanceTo(step / 16);
    }
    return pinned;
  }
}
