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
 * delivery}): each step's batch of 64 samples, taken from a plan that shuffles every epoch anew,
 * the ones not cached reserved and committed (each evicting Belady's victim), then the batch pinned
 * and released, as the read-ahead scheduler, the read completions and a stream do. Scores are
 * samples/s (ops are samples).
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

  /**
   * {@code fixed}: every sample 4096 bytes (a token dataset); {@code varied}: 2048 to 6080 bytes by
   * id (variable-length records: fragmentation, several victims per miss now and then).
   */
  @Param({"fixed", "varied"})
  public String lengths;

  private SampleCache cache;
  private final long[] ids = new long[BATCH];
  private final long[] missing = new long[BATCH];
  private final Handle[] handles = new Handle[BATCH];
  private long samples;
  private long stepsPerEpoch;
  private long step;

  @Setup(Level.Trial)
  public void setUp() {
    if (Integer.bitCount(cached) != 1 || cached < BATCH) {
      throw new IllegalArgumentException("cached=" + cached + " must be a power of two >= 64");
    }
    samples = 2L * cached;
    stepsPerEpoch = samples / BATCH;
    NextUse nextUse =
        (id, from) -> {
          long epoch = from / stepsPerEpoch;
          long s = epoch * stepsPerEpoch + position(id, epoch) / BATCH;
          return s >= from ? s : (epoch + 1) * stepsPerEpoch + position(id, epoch + 1) / BATCH;
        };
    cache =
        SampleCache.builder()
            .budgetBytes(cached * SAMPLE_BYTES)
            .slabBytes(64L << 20)
            .policy(new BeladyPolicy(nextUse))
            .preallocate(true)
            .build();
    for (long id = 0; id < cached; id++) {
      try (Reservation r = cache.reserve(id * 2, lengthOf(id * 2))) {
        if (r != null) {
          r.commit();
        }
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    cache.close();
  }

  // Each epoch is its own permutation of the samples (an affine map modulo the power of two
  // `samples`): a batch's samples are scattered over the next epoch, as in a global shuffle.
  private static final long[] MULTIPLIERS = {40503L, 0x9E3779B97F4A7C15L};
  private static final long[] INVERSES = {inverse(MULTIPLIERS[0]), inverse(MULTIPLIERS[1])};

  private long position(long id, long epoch) {
    return (id * MULTIPLIERS[(int) (epoch & 1)] + epoch * 12345) & (samples - 1);
  }

  private long sampleAt(long position, long epoch) {
    return ((position - epoch * 12345) * INVERSES[(int) (epoch & 1)]) & (samples - 1);
  }

  private long lengthOf(long id) {
    return lengths.equals("fixed") ? SAMPLE_BYTES : 64 * (32 + (id * 7919) % 64);
  }

  /** The inverse of odd {@code a} modulo 2^64 (Newton's iteration). */
  private static long inverse(long a) {
    long x = 1;
    for (int i = 0; i < 6; i++) {
      x *= 2 - a * x;
    }
    return x;
  }

  /** One step: 64 samples, about half of them read into the cache, then pinned and released. */
  @Benchmark
  @OperationsPerInvocation(BATCH)
  public int step() {
    long epoch = step / stepsPerEpoch;
    long first = (step % stepsPerEpoch) * BATCH;
    for (int i = 0; i < BATCH; i++) {
      ids[i] = sampleAt(first + i, epoch);
      missing[i] = ids[i];
      handles[i] = null;
    }
    int n = cache.retainUncached(missing, BATCH);
    for (int i = 0; i < n; i++) {
      try (Reservation r = cache.reserve(missing[i], lengthOf(missing[i]))) {
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
