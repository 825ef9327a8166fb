package io.sluice.cli;

import io.sluice.client.Delivery;
import io.sluice.client.ProtocolException;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.tools.EpochReader;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code sluice read}: reads an epoch from a running daemon and reports throughput. */
@Command(
    name = "read",
    mixinStandardHelpOptions = true,
    description = {
      "Read one epoch from a daemon through Arrow Flight, one connection per rank, and print"
          + " throughput. Without --rank every rank is read at once; --verify then checks that"
          + " each sample arrived exactly once."
    })
final class ReadCommand implements Callable<Integer> {
  @Option(names = "--dataset", required = true, description = "Dataset name.")
  String dataset;

  @Option(names = "--rank", description = "Read only this rank (default: every rank).")
  Integer rank;

  @Option(
      names = "--world-size",
      defaultValue = "1",
      description = "Ranks in the job (default: ${DEFAULT-VALUE}).")
  int worldSize;

  @Option(
      names = "--batch-size",
      defaultValue = "32",
      description = "Samples per rank per step (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Option(
      names = "--seed",
      defaultValue = "0",
      description = "Shuffle seed (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--epoch", defaultValue = "0", description = "Epoch (default: ${DEFAULT-VALUE}).")
  long epoch;

  @Option(
      names = "--shuffle",
      defaultValue = "global",
      description = "global, block, shard or none (default: ${DEFAULT-VALUE}).")
  String shuffle;

  @Option(names = "--drop-last", description = "Drop the tail instead of padding.")
  boolean dropLast;

  @Option(
      names = "--start-cursor",
      defaultValue = "0",
      description = "Resume at this cursor (default: ${DEFAULT-VALUE}).")
  long startCursor;

  @Option(
      names = "--delivery",
      defaultValue = "cpu",
      description = "cpu, shm, cuda or auto (default: ${DEFAULT-VALUE}).")
  String delivery;

  @Option(
      names = "--reconnect-timeout",
      defaultValue = "60",
      description =
          "Seconds to keep opening a rank's stream again at its position when it breaks off"
              + " (a daemon restart); 0 fails at once (default: ${DEFAULT-VALUE}).")
  double reconnectTimeout;

  @Mixin DaemonConnection daemon;

  @Option(
      names = "--verify",
      description = "Check exactly-once over all ranks (needs every rank and --start-cursor 0).")
  boolean verify;

  @Override
  public Integer call() throws Exception {
    StreamRequest base;
    try {
      base =
          new StreamRequest(
              dataset,
              rank == null ? 0 : rank,
              worldSize,
              batchSize,
              seed,
              epoch,
              shuffle,
              dropLast,
              startCursor,
              Delivery.parse(delivery),
              null,
              null,
              -1);
    } catch (ProtocolException e) {
      throw new UsageException("--" + e.getMessage().replace("_", "-"));
    }
    if (!(reconnectTimeout >= 0) || Double.isInfinite(reconnectTimeout)) {
      throw new UsageException(
          "--reconnect-timeout=" + reconnectTimeout + " must be a number of seconds >= 0");
    }
    if (verify && (rank != null || startCursor != 0)) {
      throw new UsageException("--verify needs every rank (no --rank) and --start-cursor 0");
    }
    int[] ranks = rank == null ? IntStream.range(0, worldSize).toArray() : new int[] {rank};
    long total = -1;
    if (verify) {
      try (RootAllocator alloc = new RootAllocator(Long.MAX_VALUE);
          SluiceClient c = daemon.connect(alloc)) {
        total = c.totalSamples(dataset);
      }
    }
    EpochReader.Result r =
        EpochReader.read(
            daemon.server,
            daemon.security(),
            base,
            ranks,
            total,
            EpochReader.BatchCheck.NONE,
            java.time.Duration.ofMillis(Math.round(reconnectTimeout * 1000)));
    long maxFirst = 0;
    for (long f : r.firstBatchMicros()) {
      maxFirst = Math.max(maxFirst, f);
    }
    System.out.printf(
        Locale.ROOT,
        "read %s epoch %d from %s: %d ranks, %d batches, %d samples (%d padding), %.1f MiB in %.2f s%n"
            + "throughput %.0f samples/s, %.1f MB/s; first batch within %.1f ms;"
            + " %d of %d batches through shm%n",
        dataset,
        epoch,
        daemon.server,
        ranks.length,
        r.batches(),
        r.rows(),
        r.paddedRows(),
        r.bytes() / 1048576.0,
        r.seconds(),
        r.rows() / r.seconds(),
        r.bytes() / r.seconds() / 1e6,
        maxFirst / 1000.0,
        r.shmBatches(),
        r.batches());
    if (verify) {
      System.out.println(
          r.ok()
              ? "exactly-once: ok (" + total + " samples, each once across " + worldSize + " ranks)"
              : "exactly-once: FAILED, "
                  + r.missing()
                  + " missing, "
                  + r.duplicated()
                  + " duplicated; "
                  + r.firstProblem());
    }
    return r.ok() ? 0 : 1;
  }
}
