package io.sluice.bench;

import io.sluice.cache.BeladyPolicy;
import io.sluice.cache.NextUse;
import io.sluice.cache.SampleCache;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.Manifest;
import io.sluice.format.tokens.TokenDtype;
import io.sluice.format.tokens.TokensFormat;
import io.sluice.format.tokens.TokensSource;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.prefetch.PrefetchStats;
import io.sluice.prefetch.Prefetcher;
import io.sluice.prefetch.StreamStats;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadBackends;
import io.sluice.read.ReadFile;
import io.sluice.read.ReadFiles;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.LongFunction;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The read engine's harness: on one token dataset, the device's sequential read rate, then shuffled
 * epochs through the prefetcher and the sample cache (batches assembled into Arrow buffers as the
 * daemon does, without the network), each backend side by side, cold (page cache dropped before
 * every run where the process may) or warm. A second pass per configuration paces the consumer at a
 * fraction of the rate the first pass reached, standing for GPU compute, and reports stall time.
 */
public final class ReadEngineBench {
  /** What to run. */
  public record Options(
      Path dir,
      long datasetBytes,
      int sampleBytes,
      long shardBytes,
      List<String> backends,
      List<String> shuffles,
      int ranks,
      int batchSize,
      long cacheBytes,
      double pace,
      int repeats,
      PrefetchOptions prefetch) {}

  /** One measured run. */
  public record Result(
      String backend,
      String shuffle,
      String kind,
      boolean cold,
      double seconds,
      long bytes,
      double stallSeconds,
      double stallSecondsAfterFirst,
      double stallSecondsSteady,
      PrefetchStats.Snapshot prefetch) {
    public double mbPerSecond() {
      return bytes / seconds / 1e6;
    }
  }

  private final Options o;
  private final PrintStream out;
  private boolean canDrop;

  public ReadEngineBench(Options options, PrintStream out) {
    this.o = options;
    this.out = out;
  }

  public List<Result> run() throws IOException, InterruptedException {
    prepare();
    canDrop = dropCaches();
    out.printf(
        "dataset %s: %.2f GB, %d-byte samples, %d ranks x batch %d, cache %d MiB, page cache %s%n",
        o.dir(),
        o.datasetBytes() / 1e9,
        o.sampleBytes(),
        o.ranks(),
        o.batchSize(),
        o.cacheBytes() >> 20,
        canDrop ? "dropped before each run (cold)" : "NOT dropped (warm: no permission)");
    List<Result> results = new ArrayList<>();
    for (int rep = 0; rep < o.repeats(); rep++) {
      // The ceiling is this round's own: a shared disk's rate drifts between rounds.
      double seqBest = 0;
      for (String b : o.backends()) {
        Result seq = sequential(b);
        print(seq, 0);
        results.add(seq);
        seqBest = Math.max(seqBest, seq.mbPerSecond());
      }
      for (String shuffle : o.shuffles()) {
        for (String b : o.backends()) {
          Result free = epoch(b, shuffle, 0);
          print(free, seqBest);
          results.add(free);
          double paceRate = free.bytes() / free.seconds() * o.pace();
          Result paced = epoch(b, shuffle, paceRate);
          print(paced, seqBest);
          out.printf(
              "  paced: target %.1f MB/s, consumed at %.1f%% of the free run's rate%n",
              paceRate / 1e6, 100 * paced.mbPerSecond() / free.mbPerSecond());
          results.add(paced);
        }
      }
    }
    return results;
  }

  private void print(Result r, double seqBest) {
    String ratio =
        seqBest > 0 ? String.format("%5.1f%% of sequential", 100 * r.mbPerSecond() / seqBest) : "";
    String stall =
        r.kind().equals("sequential")
            ? ""
            : String.format(
                " stall %.3f s: %.2f%% of the epoch after the first step, %.2f%% after the first"
                    + " tenth",
                r.stallSeconds(),
                100 * r.stallSecondsAfterFirst() / r.seconds(),
                100 * r.stallSecondsSteady() / r.seconds());
    String pf =
        r.prefetch() == null
            ? ""
            : String.format(
                " reads=%d coalesced=%d kept=%d samples_read=%d bytes_read=%.1fMB"
                    + " mean_latency=%.0fus in_flight_limit=%d",
                r.prefetch().reads(),
                r.prefetch().coalescedReads(),
                r.prefetch().neighboursKept(),
                r.prefetch().samplesRead(),
                r.prefetch().bytesRead() / 1e6,
                r.prefetch().meanReadMicros(),
                r.prefetch().inFlightLimit());
    out.printf(
        "%-16s %-8s %-10s %s %8.1f MB/s %6.2f s %s%s%s%n",
        r.backend(),
        r.shuffle(),
        r.kind(),
        r.cold() ? "cold" : "warm",
        r.mbPerSecond(),
        r.seconds(),
        ratio,
        stall,
        pf);
  }

  private void prepare() throws IOException {
    Files.createDirectories(o.dir());
    if (Files.exists(o.dir().resolve(Manifest.FILE_NAME))) {
      Manifest m = Manifest.read(o.dir());
      if (m.totalBytes() >= o.datasetBytes() * 0.99
          && String.valueOf(o.sampleBytes() / 2).equals(m.param("seq_len"))
          && "uint16".equals(m.param("dtype"))) {
        return;
      }
      try (var old = Files.list(o.dir())) {
        for (Path p : old.toList()) {
          if (p.getFileName().toString().startsWith("shard-")) {
            Files.delete(p); // made by an earlier run with another size or sample length
          }
        }
      }
    }
    int shards = (int) Math.max(1, o.datasetBytes() / o.shardBytes());
    long perShard = o.shardBytes() / o.sampleBytes() * o.sampleBytes();
    ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
    out.printf("writing %d shards of %d MiB under %s ...%n", shards, perShard >> 20, o.dir());
    for (int s = 0; s < shards; s++) {
      Path p = o.dir().resolve(String.format("shard-%05d.bin", s));
      try (FileChannel ch =
          FileChannel.open(
              p,
              StandardOpenOption.CREATE,
              StandardOpenOption.WRITE,
              StandardOpenOption.TRUNCATE_EXISTING)) {
        for (long done = 0; done < perShard; ) {
          chunk.clear();
          while (chunk.remaining() >= 8) {
            chunk.putLong(ThreadLocalRandom.current().nextLong());
          }
          chunk.flip().limit((int) Math.min(chunk.limit(), perShard - done));
          done += ch.write(chunk);
        }
      }
    }
    TokensFormat.index(o.dir(), TokenDtype.UINT16, o.sampleBytes() / 2, IndexProgress.NONE);
  }

  private boolean dropCaches() {
    try {
      new ProcessBuilder("sync").inheritIO().start().waitFor();
      Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3");
      return true;
    } catch (IOException | InterruptedException e) {
      return false;
    }
  }

  private static ReadBackend backend(String name) {
    return ReadBackends.select(name);
  }

  /** Every shard front to back in 1 MiB reads, 64 in flight where the backend batches. */
  private Result sequential(String backendName) throws IOException {
    boolean cold = canDrop && dropCaches();
    Manifest m = Manifest.read(o.dir());
    int chunk = 1 << 20;
    int depth = 64; // as deep as the read-ahead goes in practice: the ceiling must not be the queue
    List<ByteBuffer> buffers = new ArrayList<>();
    for (int i = 0; i < depth; i++) {
      buffers.add(ByteBuffer.allocateDirect(chunk + 4096).alignedSlice(4096));
    }
    long bytes = 0;
    long t0 = System.nanoTime();
    try (ReadBackend backend = backend(backendName)) {
      List<ReadFile> files = new ArrayList<>();
      try {
        for (var shard : m.shards()) {
          files.add(backend.open(o.dir().resolve(shard.path())));
        }
        // One queue across shard boundaries: draining it at the end of every shard would
        // measure the pipeline's restarts, not the device.
        List<CompletableFuture<Void>> inFlight = new ArrayList<>();
        long n = 0;
        for (ReadFile f : files) {
          long length = f.lengthBytes();
          for (long off = 0; off < length; off += chunk, n++) {
            ByteBuffer b = buffers.get((int) (n % depth));
            if (backend.prefersBatches()) {
              if (inFlight.size() == depth) {
                inFlight.removeFirst().join(); // the read that last used this buffer
              }
              b.clear().limit((int) Math.min(chunk, length - off));
              inFlight.add(backend.readAsync(f, off, b));
            } else {
              b.clear().limit((int) Math.min(chunk, length - off));
              f.readFully(off, b);
            }
          }
          bytes += length;
        }
        inFlight.forEach(CompletableFuture::join);
      } finally {
        ReadFiles.closeAll(files.toArray(ReadFile[]::new));
      }
    }
    double s = (System.nanoTime() - t0) / 1e9;
    return new Result(backendName, "-", "sequential", cold, s, bytes, 0, 0, 0, null);
  }

  /**
   * One shuffled epoch, every rank on its own thread taking its batches in order; {@code paceRate}
   * bytes per second in all (0: as fast as it goes) makes each rank sleep per step for its share.
   */
  private Result epoch(String backendName, String shuffle, double paceRate)
      throws IOException, InterruptedException {
    boolean cold = canDrop && dropCaches();
    try (ReadBackend backend = backend(backendName);
        TokensSource source = (TokensSource) Formats.open(o.dir(), backend);
        SampleCache cache =
            SampleCache.builder()
                .budgetBytes(o.cacheBytes())
                .slabBytes(Math.min(SampleCache.DEFAULT_SLAB_BYTES, o.cacheBytes()))
                .alignmentBytes(backendName.endsWith("direct") ? 4096 : 64)
                .policy(new BeladyPolicy((id, step) -> NextUse.NEVER))
                .build();
        BufferAllocator allocator = new RootAllocator()) {
      Map<Long, EpochPlan> plans = new ConcurrentHashMap<>();
      LongFunction<EpochPlan> planOf =
          e ->
              plans.computeIfAbsent(
                  e,
                  x ->
                      EpochPlan.of(
                          GlobalSequence.of(source.layout(), 1, x, ShuffleMode.parse(shuffle, 4)),
                          o.ranks(),
                          o.batchSize(),
                          true));
      EpochPlan plan = planOf.apply(0);
      Schema schema = source.schema();
      long stepBytes = (long) o.batchSize() * o.sampleBytes();
      long periodNs = paceRate > 0 ? (long) (stepBytes * o.ranks() / paceRate * 1e9) : 0;
      List<StreamStats> streamStats = new ArrayList<>();
      long[] steadyStall = new long[o.ranks()];
      long t0;
      PrefetchStats.Snapshot pf;
      try (Prefetcher p =
          new Prefetcher(
              "bench",
              source,
              source.layout().totalSamples(),
              backend,
              cache,
              planOf,
              o.prefetch())) {
        List<Prefetcher.Consumer> consumers = new ArrayList<>();
        for (int r = 0; r < o.ranks(); r++) {
          consumers.add(p.open(r, 0, 0));
        }
        t0 = System.nanoTime();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int r = 0; r < o.ranks(); r++) {
          int rank = r;
          Prefetcher.Consumer c = consumers.get(r);
          streamStats.add(c.stats());
          threads.add(
              Thread.ofPlatform()
                  .name("bench-rank-" + r)
                  .start(
                      () -> {
                        long[] ids = new long[o.batchSize()];
                        try (BufferAllocator a =
                            allocator.newChildAllocator("rank-" + rank, 0, Long.MAX_VALUE)) {
                          long due = System.nanoTime();
                          for (long step = 0; step < plan.stepCount(); step++) {
                            plan.fill(rank, step, ids, null);
                            long stalledBefore = c.stats().snapshot().stallNanos();
                            try (Prefetcher.Batch b = c.take(step, ids, ids.length);
                                VectorSchemaRoot root = VectorSchemaRoot.create(schema, a)) {
                              source.fillFrom(ids, ids.length, b.bytes(), root);
                              root.setRowCount(ids.length);
                            }
                            long stalled = c.stats().snapshot().stallNanos() - stalledBefore;
                            if (step >= plan.stepCount() / 10) {
                              steadyStall[rank] += stalled;
                            }
                            if (stalled > 5_000_000
                                && System.getenv("SLUICE_BENCH_STALLS") != null) {
                              out.printf(
                                  "  stall rank %d step %d: %.1f ms%n", rank, step, stalled / 1e6);
                            }
                            // The trainer's steps keep a fixed timeline, one period each
                            // (taking and unpacking the batch included), which only a stall
                            // pushes back: a late wake-up from sleep is made up by the steps
                            // after it, so the consumer runs at the pace asked for, not below.
                            due += periodNs + stalled;
                            long computeNs = due - System.nanoTime();
                            if (periodNs > 0 && computeNs > 0) {
                              Thread.sleep(computeNs / 1_000_000, (int) (computeNs % 1_000_000));
                            }
                          }
                        } catch (IOException | InterruptedException | RuntimeException e) {
                          failures.add(e);
                        } finally {
                          c.close();
                        }
                      }));
        }
        for (Thread t : threads) {
          t.join();
        }
        if (!failures.isEmpty()) {
          throw new IOException("a rank failed: " + failures.getFirst(), failures.getFirst());
        }
        pf = p.stats();
      }
      double seconds = (System.nanoTime() - t0) / 1e9;
      long bytes = plan.stepCount() * stepBytes * o.ranks();
      // Ranks run side by side: the epoch stalled as long as its most stalled rank.
      double stall = 0;
      double stallAfterFirst = 0;
      double steady = 0;
      for (int r = 0; r < streamStats.size(); r++) {
        StreamStats.Snapshot snap = streamStats.get(r).snapshot();
        stall = Math.max(stall, snap.stallNanos() / 1e9);
        stallAfterFirst = Math.max(stallAfterFirst, snap.stallNanosAfterFirst() / 1e9);
        steady = Math.max(steady, steadyStall[r] / 1e9);
      }
      return new Result(
          backendName,
          shuffle,
          paceRate > 0 ? String.format("paced%.0f%%", o.pace() * 100) : "epoch",
          cold,
          seconds,
          bytes,
          stall,
          stallAfterFirst,
          steady,
          pf);
    }
  }
}
