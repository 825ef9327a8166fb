package io.sluice.demo;

import io.sluice.client.Protocol;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.format.Manifest;
import io.sluice.server.SluiceDaemon;
import java.io.PrintStream;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.UInt2Vector;
import org.apache.arrow.vector.UInt8Vector;
import org.apache.arrow.vector.complex.FixedSizeListVector;

/**
 * The demo: a token dataset on disk, the daemon in-process on a free loopback port, one shuffled
 * epoch streamed to every rank through real Flight clients, and a report that checks every token
 * and that the ranks together saw each sample exactly once.
 */
public final class DemoRunner {
  /** What to run. */
  public record Options(
      Path dir, int shards, int samplesPerShard, int seqLen, int ranks, int batchSize, long seed) {}

  /** What happened; {@link #ok()} when every check passed. */
  public record Report(
      long samples,
      long bytes,
      double seconds,
      long[] firstBatchMicros,
      long contentErrors,
      long missing,
      long duplicated,
      long padded,
      String firstProblem) {
    public boolean ok() {
      return contentErrors == 0 && missing == 0 && duplicated == 0;
    }
  }

  private record RankResult(
      long rows, long bytes, long firstBatchMicros, long contentErrors, String problem) {}

  private DemoRunner() {}

  public static Report run(Options o, PrintStream out) throws Exception {
    Manifest m = DemoDataset.ensure(o.dir(), o.shards(), o.samplesPerShard(), o.seqLen());
    long n = m.totalSamples();
    out.printf(
        Locale.ROOT,
        "dataset      tokens uint16, seq_len %d, %d shards, %d samples (%s) in %s%n",
        o.seqLen(),
        m.shards().size(),
        n,
        mib(m.totalBytes()),
        o.dir());
    try (SluiceDaemon daemon = SluiceDaemon.start("127.0.0.1", 0, Map.of("demo", o.dir()))) {
      out.printf(
          Locale.ROOT,
          "daemon       %s (backend posix, delivery cpu)%n"
              + "epoch        0, shuffle global, seed %d, %d ranks x batch %d%n",
          daemon.uri(),
          o.seed(),
          o.ranks(),
          o.batchSize());
      int[] seen = new int[Math.toIntExact(n)];
      long[] paddedRows = new long[1];
      long start = System.nanoTime();
      List<Future<RankResult>> futures = new ArrayList<>();
      try (ExecutorService pool = Executors.newFixedThreadPool(o.ranks())) {
        for (int r = 0; r < o.ranks(); r++) {
          int rank = r;
          futures.add(pool.submit(() -> readRank(daemon.uri(), o, rank, seen, paddedRows)));
        }
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      long rows = 0;
      long bytes = 0;
      long contentErrors = 0;
      long[] first = new long[o.ranks()];
      String problem = null;
      for (int r = 0; r < o.ranks(); r++) {
        RankResult rr = futures.get(r).get();
        rows += rr.rows();
        bytes += rr.bytes();
        contentErrors += rr.contentErrors();
        first[r] = rr.firstBatchMicros();
        if (problem == null) {
          problem = rr.problem();
        }
      }
      long missing = 0;
      long duplicated = 0;
      for (int i = 0; i < seen.length; i++) {
        if (seen[i] == 0) {
          missing++;
          if (problem == null) {
            problem = "sample_id=" + i + " was never delivered";
          }
        } else if (seen[i] > 1) {
          duplicated++;
          if (problem == null) {
            problem = "sample_id=" + i + " was delivered " + seen[i] + " times";
          }
        }
      }
      return new Report(
          rows, bytes, seconds, first, contentErrors, missing, duplicated, paddedRows[0], problem);
    }
  }

  private static RankResult readRank(String uri, Options o, int rank, int[] seen, long[] paddedRows)
      throws Exception {
    long start = System.nanoTime();
    long rows = 0;
    long bytes = 0;
    long firstMicros = -1;
    long errors = 0;
    String problem = null;
    short[] tokenScratch = new short[0];
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceClient client = SluiceClient.connect(uri, alloc);
        RankStream stream =
            client.open(
                StreamRequest.of("demo", rank, o.ranks(), o.batchSize()).withSeed(o.seed()))) {
      while (stream.next()) {
        if (firstMicros < 0) {
          firstMicros = (System.nanoTime() - start) / 1000;
        }
        UInt8Vector ids = (UInt8Vector) stream.root().getVector(Protocol.SAMPLE_ID_COLUMN);
        FixedSizeListVector tokens = (FixedSizeListVector) stream.root().getVector("tokens");
        UInt2Vector values = (UInt2Vector) tokens.getDataVector();
        int count = stream.root().getRowCount();
        // Bulk-copy the tokens once: per-element vector getters bounds-check every read.
        int elements = count * o.seqLen();
        if (tokenScratch.length < elements) {
          tokenScratch = new short[elements];
        }
        values
            .getDataBuffer()
            .nioBuffer(0, elements * DemoDataset.DTYPE.widthBytes())
            .order(ByteOrder.LITTLE_ENDIAN)
            .asShortBuffer()
            .get(tokenScratch, 0, elements);
        int real = count - stream.metadata().padded();
        for (int i = 0; i < count; i++) {
          long id = ids.get(i);
          int bad = DemoDataset.firstBadToken(id, tokenScratch, i * o.seqLen(), o.seqLen());
          if (bad >= 0) {
            errors++;
            if (problem == null) {
              problem =
                  "rank="
                      + rank
                      + " sample_id="
                      + id
                      + " token "
                      + bad
                      + " is "
                      + (tokenScratch[i * o.seqLen() + bad] & 0xFFFF)
                      + ", expected "
                      + DemoDataset.token(id, bad);
            }
          }
          if (i < real) {
            synchronized (seen) {
              seen[Math.toIntExact(id)]++;
            }
          } else {
            synchronized (paddedRows) {
              paddedRows[0]++;
            }
          }
        }
        rows += count;
        bytes += (long) count * o.seqLen() * DemoDataset.DTYPE.widthBytes();
      }
    }
    return new RankResult(rows, bytes, firstMicros, errors, problem);
  }

  /** Prints the report's numbers and verdicts. */
  public static void print(Report r, int ranks, PrintStream out) {
    out.printf(
        Locale.ROOT, "samples      %d delivered (%d padding rows)%n", r.samples(), r.padded());
    out.printf(Locale.ROOT, "bytes        %s of tokens%n", mib(r.bytes()));
    out.printf(
        Locale.ROOT,
        "throughput   %.0f samples/s, %.1f MB/s over %.2f s%n",
        r.samples() / r.seconds(),
        r.bytes() / r.seconds() / 1e6,
        r.seconds());
    StringBuilder fb = new StringBuilder();
    for (int i = 0; i < ranks; i++) {
      fb.append(i == 0 ? "" : ", ")
          .append(
              String.format(Locale.ROOT, "%.1f ms (rank %d)", r.firstBatchMicros()[i] / 1000.0, i));
    }
    out.println("first batch  " + fb);
    out.println(
        "content:     "
            + (r.contentErrors() == 0
                ? "ok (every token matches its sample id)"
                : "FAILED, " + r.contentErrors() + " bad samples"));
    out.println(
        "exactly-once: "
            + (r.missing() == 0 && r.duplicated() == 0
                ? "ok (each sample once across " + ranks + " ranks)"
                : "FAILED, " + r.missing() + " missing, " + r.duplicated() + " duplicated"));
    if (r.firstProblem() != null) {
      out.println("first problem: " + r.firstProblem());
    }
  }

  private static String mib(long bytes) {
    return String.format(Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024.0));
  }
}
