package io.sluice.planner.bench;

import io.sluice.planner.DatasetLayout;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * Sample ids per second the planner produces, per shuffle mode: {@code sampleAt} over sequential
 * positions, and {@code EpochPlan.fill} of a 1024-sample batch. Scores are ids/s (ops are ids). The
 * dataset is 10^10 samples in 10,000 shards of 10^6 (global mode's domain is 2^34, so about 1.7
 * Feistel evaluations per id from cycle walking).
 *
 * <p>Run from the repository root (single thread, short):
 *
 * <pre>
 * export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
 * ./mvnw -B -q -pl shuffle-planner install -DskipTests
 * ./mvnw -B -q -pl shuffle-planner dependency:build-classpath -Dmdep.outputFile=target/bench.cp \
 *     -Dmdep.includeScope=test
 * $JAVA_HOME/bin/java -cp shuffle-planner/target/test-classes:shuffle-planner/target/classes:$(cat shuffle-planner/target/bench.cp) \
 *     org.openjdk.jmh.Main PlannerBenchmark -f 1 -wi 2 -w 1s -i 3 -r 1s -t 1
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class PlannerBenchmark {
  private static final int BATCH = 1024;
  private static final int WORLD = 8;

  @Param({"global", "block", "shard", "none"})
  public String mode;

  private GlobalSequence sequence;
  private EpochPlan plan;
  private long[] ids;
  private long position;
  private long step;

  @Setup(Level.Trial)
  public void setUp() {
    long[] shards = new long[10_000];
    java.util.Arrays.fill(shards, 1_000_000L);
    sequence =
        GlobalSequence.of(
            DatasetLayout.ofShards(shards),
            42,
            0,
            ShuffleMode.parse(mode, ShuffleMode.DEFAULT_SHARDS_PER_BLOCK));
    plan = EpochPlan.of(sequence, WORLD, BATCH, true);
    ids = new long[BATCH];
  }

  /** One id per op: sampleAt at consecutive positions. */
  @Benchmark
  public long sampleAt() {
    long p = position;
    position = p + 1 == sequence.size() ? 0 : p + 1;
    return sequence.sampleAt(p);
  }

  /** 1024 ids per op: one rank's batch at consecutive steps. */
  @Benchmark
  @OperationsPerInvocation(BATCH)
  public void fillBatch(Blackhole blackhole) {
    long s = step;
    step = s + 1 == plan.stepCount() ? 0 : s + 1;
    plan.fill((int) (s % WORLD), s, ids, null);
    blackhole.consume(ids);
  }
}
