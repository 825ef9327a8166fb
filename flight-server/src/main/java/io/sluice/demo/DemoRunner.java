package io.sluice.demo;

import io.sluice.client.Delivery;
import io.sluice.client.Protocol;
import io.sluice.client.StreamRequest;
import io.sluice.format.Manifest;
import io.sluice.server.FlightTransport;
import io.sluice.server.SluiceDaemon;
import io.sluice.tools.EpochReader;
import java.io.PrintStream;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.stream.IntStream;
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
      Path dir,
      int shards,
      int samplesPerShard,
      int seqLen,
      int ranks,
      int batchSize,
      long seed,
      FlightTransport transport,
      String backend) {}

  private DemoRunner() {}

  public static EpochReader.Result run(Options o, PrintStream out) throws Exception {
    Manifest m = DemoDataset.ensure(o.dir(), o.shards(), o.samplesPerShard(), o.seqLen());
    out.printf(
        Locale.ROOT,
        "dataset      tokens uint16, seq_len %d, %d shards, %d samples (%s) in %s%n",
        o.seqLen(),
        m.shards().size(),
        m.totalSamples(),
        mib(m.totalBytes()),
        o.dir());
    try (SluiceDaemon daemon =
        SluiceDaemon.start("127.0.0.1", 0, Map.of("demo", o.dir()), o.transport(), o.backend())) {
      out.printf(
          Locale.ROOT,
          "daemon       %s (transport %s, backend %s, delivery auto)%n"
              + "epoch        0, shuffle global, seed %d, %d ranks x batch %d%n",
          daemon.uri(),
          daemon.transport().wireName(),
          daemon.backendName(),
          o.seed(),
          o.ranks(),
          o.batchSize());
      StreamRequest base =
          StreamRequest.of("demo", 0, o.ranks(), o.batchSize())
              .withSeed(o.seed())
              .withDelivery(Delivery.AUTO);
      int[] ranks = IntStream.range(0, o.ranks()).toArray();
      return EpochReader.read(daemon.uri(), base, ranks, m.totalSamples(), tokenCheck(o.seqLen()));
    }
  }

  /** Checks every token of every row against the value its sample id dictates. */
  static EpochReader.BatchCheck tokenCheck(int seqLen) {
    ThreadLocal<short[]> scratch = ThreadLocal.withInitial(() -> new short[0]);
    return (rank, root, meta) -> {
      UInt8Vector ids = (UInt8Vector) root.getVector(Protocol.SAMPLE_ID_COLUMN);
      UInt2Vector values =
          (UInt2Vector) ((FixedSizeListVector) root.getVector("tokens")).getDataVector();
      int count = root.getRowCount();
      int elements = count * seqLen;
      short[] tokens = scratch.get();
      if (tokens.length < elements) {
        tokens = new short[elements];
        scratch.set(tokens);
      }
      // Bulk-copy once: per-element vector getters bounds-check every read.
      values
          .getDataBuffer()
          .nioBuffer(0, elements * DemoDataset.DTYPE.widthBytes())
          .order(ByteOrder.LITTLE_ENDIAN)
          .asShortBuffer()
          .get(tokens, 0, elements);
      for (int i = 0; i < count; i++) {
        long id = ids.get(i);
        int bad = DemoDataset.firstBadToken(id, tokens, i * seqLen, seqLen);
        if (bad >= 0) {
          return "rank="
              + rank
              + " step="
              + meta.step()
              + " sample_id="
              + id
              + " token "
              + bad
              + " is "
              + (tokens[i * seqLen + bad] & 0xFFFF)
              + ", expected "
              + DemoDataset.token(id, bad);
        }
      }
      return null;
    };
  }

  /** Prints the report's numbers and verdicts. */
  public static void print(EpochReader.Result r, PrintStream out) {
    out.printf(
        Locale.ROOT, "samples      %d delivered (%d padding rows)%n", r.rows(), r.paddedRows());
    out.printf(Locale.ROOT, "bytes        %s of Arrow column data%n", mib(r.bytes()));
    out.printf(
        Locale.ROOT,
        "delivery     %s%n",
        r.shmBatches() == r.batches()
            ? "shm: every batch read in place from the daemon's shared memory"
            : r.shmBatches() == 0
                ? "cpu: every batch in the Flight stream"
                : r.shmBatches() + " of " + r.batches() + " batches through shm, the rest cpu");
    out.printf(
        Locale.ROOT,
        "throughput   %.0f samples/s, %.1f MB/s over %.2f s%n",
        r.rows() / r.seconds(),
        r.bytes() / r.seconds() / 1e6,
        r.seconds());
    StringBuilder fb = new StringBuilder();
    for (int i = 0; i < r.firstBatchMicros().length; i++) {
      fb.append(i == 0 ? "" : ", ")
          .append(
              String.format(Locale.ROOT, "%.1f ms (rank %d)", r.firstBatchMicros()[i] / 1000.0, i));
    }
    out.println("first batch  " + fb);
    out.println(
        "content:     "
            + (r.badBatches() == 0
                ? "ok (every token matches its sample id)"
                : "FAILED, " + r.badBatches() + " bad batches"));
    out.println(
        "exactly-once: "
            + (r.missing() == 0 && r.duplicated() == 0
                ? "ok (each sample once across " + r.firstBatchMicros().length + " ranks)"
                : "FAILED, " + r.missing() + " missing, " + r.duplicated() + " duplicated"));
    if (r.firstProblem() != null) {
      out.println("first problem: " + r.firstProblem());
    }
  }

  static String mib(long bytes) {
    return String.format(Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024.0));
  }
}
