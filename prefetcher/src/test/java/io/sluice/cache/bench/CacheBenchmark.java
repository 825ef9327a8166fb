package io.sluice.cache.bench;

import io.sluice.cache.BeladyPolicy;
import io.sluice.cache.CaffeinePolicy;
import io.sluice.cache.EvictionPolicy;
import io.sluice.cache.LruPolicy;
import io.sluice.cache.SampleCache;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Locale;
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
 * Accesses per second through {@link SampleCache} for each eviction policy, replaying one node's
 * two epochs of a real plan (N=20,000 samples of 512 to 4096 bytes, global shuffle, ranks 0 and 1
 * of world size 4, batch 50: 20,000 accesses, each a pin, and on a miss a put that copies the bytes
 * in) into a fresh cache of 10%, 25% or 50% of all samples' bytes. Scores are accesses/s (ops are
 * accesses). Each trial prints the replay's hit rate ({@code # hit rate ...}), the number to
 * compare policies on; Caffeine's own hit rate on the same trace is printed beside it.
 *
 * <p>Run from the repository root (single thread, short):
 *
 * <pre>
 * export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
 * ./mvnw -B -q -pl prefetcher install -DskipTests
 * ./mvnw -B -q -pl prefetcher dependency:build-classpath -Dmdep.outputFile=target/bench.cp \
 *     -Dmdep.includeScope=test
 * $JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED \
 *     -cp prefetcher/target/test-classes:prefetcher/target/classes:$(cat prefetcher/target/bench.cp) \
 *     org.openjdk.jmh.Main CacheBenchmark -f 1 -wi 3 -w 2s -i 5 -r 2s -t 1
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class CacheBenchmark {
  private static final int ACCESSES = 20_000;

  @Param({"belady", "lru", "caffeine"})
  public String policy;

  @Param({"10", "25", "50"})
  public int budgetPercent;

  private AccessTrace trace;
  private long budgetBytes;
  private Arena arena;
  private MemorySegment source;
  private SampleCache cache;
  private AccessTrace.Result last;

  @Setup(Level.Trial)
  public void setUpTrial() {
    trace = AccessTrace.of(20_000, 4, new int[] {0, 1}, 50, 7);
    if (trace.length() != ACCESSES) {
      throw new IllegalStateException("trace length=" + trace.length() + " != " + ACCESSES);
    }
    budgetBytes = trace.totalBytes() * budgetPercent / 100;
    arena = Arena.ofShared();
    source = arena.allocate(AccessTrace.MAX_SAMPLE_BYTES);
  }

  @Setup(Level.Invocation)
  public void setUpInvocation() {
    EvictionPolicy p =
        switch (policy) {
          case "belady" -> new BeladyPolicy(trace.nextUse());
          case "lru" -> new LruPolicy();
          case "caffeine" -> new CaffeinePolicy();
          default -> throw new IllegalArgumentException("policy=" + policy);
        };
    cache = SampleCache.builder().budgetBytes(budgetBytes).policy(p).preallocate(true).build();
  }

  @TearDown(Level.Invocation)
  public void tearDownInvocation() {
    cache.close();
  }

  @TearDown(Level.Trial)
  public void tearDownTrial() {
    System.out.printf(
        Locale.ROOT,
        "%n# hit rate policy=%s budget=%d%%: %.4f (caffeine itself %.4f)%n",
        policy,
        budgetPercent,
        last.hitRate(),
        trace.replayCaffeine(budgetBytes, SampleCache.DEFAULT_ALIGNMENT_BYTES).hitRate());
    arena.close();
  }

  /** One replay of the whole trace: 20,000 accesses. */
  @Benchmark
  @OperationsPerInvocation(ACCESSES)
  public long replay() {
    last = trace.replay(cache, source);
    return last.hits();
  }
}
