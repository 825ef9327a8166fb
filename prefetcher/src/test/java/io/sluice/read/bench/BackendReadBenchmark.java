package io.sluice.read.bench;

import io.sluice.read.ReadBackend;
import io.sluice.read.ReadBackends;
import io.sluice.read.ReadFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
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
 * Random sample reads through each backend from a 256 MiB file in the page cache: a step's 64 reads
 * of {@code sampleBytes} issued together (as a format fills a batch), then waited for. The file is
 * warm, so the score is each backend's CPU cost per read, not the device's. Scores are reads/s (ops
 * are reads).
 *
 * <p>Run from the repository root ({@code ./sluice bench micro BackendRead} does all of this):
 *
 * <pre>
 * ./mvnw -B -q -pl prefetcher dependency:build-classpath -Dmdep.outputFile=target/bench.cp \
 *     -Dmdep.includeScope=test
 * $JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED \
 *     -cp prefetcher/target/test-classes:prefetcher/target/classes:$(cat prefetcher/target/bench.cp) \
 *     org.openjdk.jmh.Main BackendReadBenchmark -f 1 -wi 2 -w 1s -i 3 -r 1s -t 1
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class BackendReadBenchmark {
  private static final int READS = 64;
  private static final long FILE_BYTES = 256L << 20;

  @Param({"posix", "io_uring"})
  public String backend;

  @Param({"4096", "32768"})
  public int sampleBytes;

  private ReadBackend reader;
  private ReadFile file;
  private Path path;
  private final ByteBuffer[] buffers = new ByteBuffer[READS];
  private final long[] offsets = new long[READS];

  private final java.util.List<CompletableFuture<Void>> pending = new java.util.ArrayList<>(READS);

  private final SplittableRandom random = new SplittableRandom(11);

  @Setup(Level.Trial)
  public void setUp() throws IOException {
    path = Path.of(System.getProperty("java.io.tmpdir"), "sluice-backend-read-bench.bin");
    if (!Files.exists(path) || Files.size(path) != FILE_BYTES) {
      byte[] chunk = new byte[1 << 20];
      new SplittableRandom(3).nextBytes(chunk);
      try (var out = Files.newOutputStream(path)) {
        for (long w = 0; w < FILE_BYTES; w += chunk.length) {
          out.write(chunk);
        }
      }
    }
    Files.readAllBytes(path); // into the page cache
    reader = ReadBackends.select(backend);
    file = reader.open(path);
    for (int i = 0; i < READS; i++) {
      buffers[i] = ByteBuffer.allocateDirect(sampleBytes);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() throws IOException {
    file.close();
    reader.close();
  }

  /** One step: 64 reads at random sample-aligned offsets, all in flight, then all waited for. */
  @Benchmark
  @OperationsPerInvocation(READS)
  public long readStep() {
    long slots = FILE_BYTES / sampleBytes;
    pending.clear();
    for (int i = 0; i < READS; i++) {
      offsets[i] = random.nextLong(slots) * sampleBytes;
      buffers[i].clear();
      pending.add(reader.readAsync(file, offsets[i], buffers[i]));
    }
    long sum = 0;
    for (int i = 0; i < READS; i++) {
      pending.get(i).join();
      sum += buffers[i].get(0);
    }
    pending.clear();
    return sum;
  }
}
