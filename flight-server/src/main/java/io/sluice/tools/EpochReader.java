package io.sluice.tools;

import io.sluice.client.BatchMetadata;
import io.sluice.client.Protocol;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLongArray;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.UInt8Vector;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * Reads one epoch for a set of ranks through real Flight clients, one thread and connection per
 * rank, timing it and, when every rank is read, checking that each sample arrived exactly once.
 */
public final class EpochReader {
  /** Checks one batch on its rank's thread; returns a description of what is wrong, or null. */
  @FunctionalInterface
  public interface BatchCheck {
    BatchCheck NONE = (rank, root, meta) -> null;

    String check(int rank, VectorSchemaRoot root, BatchMetadata meta);
  }

  /**
   * What was read.
   *
   * @param bytes Arrow buffer bytes of the data columns received
   * @param missing samples never delivered (-1 when exactly-once was not checked)
   * @param duplicated samples delivered more than once (-1 when not checked)
   */
  public record Result(
      long batches,
      long rows,
      long paddedRows,
      long bytes,
      double seconds,
      long[] firstBatchMicros,
      long badBatches,
      long missing,
      long duplicated,
      String firstProblem,
      long shmBatches) {
    public boolean ok() {
      return badBatches == 0 && missing <= 0 && duplicated <= 0;
    }
  }

  private record RankResult(
      long batches,
      long rows,
      long padded,
      long bytes,
      long firstMicros,
      long bad,
      String problem,
      long shm) {}

  private EpochReader() {}

  /**
   * Reads {@code ranks} of {@code base} (its rank field is replaced) concurrently.
   *
   * @param totalSamples the dataset's sample count to check exactly-once against, or -1 not to
   *     check (only meaningful when every rank is read from cursor 0)
   */
  public static Result read(
      String uri, StreamRequest base, int[] ranks, long totalSamples, BatchCheck check)
      throws Exception {
    return read(uri, SluiceClient.Security.none(), base, ranks, totalSamples, check, Duration.ZERO);
  }

  /**
   * As above, connecting with {@code security} (a token, trusted TLS certificates), each rank's
   * stream reopened at its position for up to {@code reconnectTimeout} when it breaks off (a daemon
   * restart; see {@link SluiceClient#open(StreamRequest, Duration)}; {@link Duration#ZERO}: never).
   */
  public static Result read(
      String uri,
      SluiceClient.Security security,
      StreamRequest base,
      int[] ranks,
      long totalSamples,
      BatchCheck check,
      Duration reconnectTimeout)
      throws Exception {
    if (totalSamples > Integer.MAX_VALUE * 64L) {
      throw new IllegalArgumentException(
          "exactly-once check needs a bitmap of " + totalSamples + " samples: too many");
    }
    // Two bitmaps: seen at least once, seen at least twice.
    AtomicLongArray once =
        new AtomicLongArray(totalSamples < 0 ? 0 : (int) ((totalSamples + 63) / 64));
    AtomicLongArray twice = new AtomicLongArray(once.length());
    long start = System.nanoTime();
    List<Future<RankResult>> futures = new ArrayList<>();
    try (ExecutorService pool = Executors.newFixedThreadPool(ranks.length)) {
      for (int r : ranks) {
        StreamRequest req = base.withRank(r);
        futures.add(
            pool.submit(
                () ->
                    readRank(
                        uri, security, req, totalSamples, once, twice, check, reconnectTimeout)));
      }
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    long batches = 0;
    long rows = 0;
    long padded = 0;
    long bytes = 0;
    long bad = 0;
    long shm = 0;
    long[] first = new long[ranks.length];
    String problem = null;
    for (int i = 0; i < ranks.length; i++) {
      RankResult rr;
      try {
        rr = futures.get(i).get();
      } catch (java.util.concurrent.ExecutionException e) {
        throw e.getCause() instanceof Exception c ? c : e; // the rank's own error, not a wrapper
      }
      batches += rr.batches();
      rows += rr.rows();
      padded += rr.padded();
      bytes += rr.bytes();
      bad += rr.bad();
      shm += rr.shm();
      first[i] = rr.firstMicros();
      if (problem == null) {
        problem = rr.problem();
      }
    }
    long missing = -1;
    long duplicated = -1;
    if (totalSamples >= 0) {
      missing = 0;
      duplicated = 0;
      for (long id = 0; id < totalSamples; id++) {
        long bit = 1L << (id & 63);
        if ((once.get((int) (id >>> 6)) & bit) == 0) {
          missing++;
          if (problem == null) {
            problem = "sample_id=" + id + " was never delivered";
          }
        } else if ((twice.get((int) (id >>> 6)) & bit) != 0) {
          duplicated++;
          if (problem == null) {
            problem = "sample_id=" + id + " was delivered more than once";
          }
        }
      }
    }
    return new Result(
        batches, rows, padded, bytes, seconds, first, bad, missing, duplicated, problem, shm);
  }

  private static RankResult readRank(
      String uri,
      SluiceClient.Security security,
      StreamRequest req,
      long totalSamples,
      AtomicLongArray once,
      AtomicLongArray twice,
      BatchCheck check,
      Duration reconnectTimeout) {
    long start = System.nanoTime();
    long batches = 0;
    long rows = 0;
    long padded = 0;
    long bytes = 0;
    long firstMicros = -1;
    long bad = 0;
    long shm = 0;
    String problem = null;
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceClient client = SluiceClient.connect(uri, alloc, security);
        RankStream stream = client.open(req, reconnectTimeout)) {
      while (stream.next()) {
        if (firstMicros < 0) {
          firstMicros = (System.nanoTime() - start) / 1000;
        }
        VectorSchemaRoot root = stream.root();
        BatchMetadata meta = stream.metadata();
        int count = root.getRowCount();
        int real = count - meta.padded();
        if (totalSamples >= 0) {
          UInt8Vector ids = (UInt8Vector) root.getVector(Protocol.SAMPLE_ID_COLUMN);
          for (int i = 0; i < real; i++) {
            long id = ids.get(i);
            if (id < 0 || id >= totalSamples) {
              bad++;
              if (problem == null) {
                problem =
                    "rank="
                        + req.rank()
                        + " got sample_id="
                        + Long.toUnsignedString(id)
                        + " outside [0, "
                        + totalSamples
                        + ")";
              }
              continue;
            }
            long bit = 1L << (id & 63);
            int word = (int) (id >>> 6);
            if ((once.getAndAccumulate(word, bit, (a, b) -> a | b) & bit) != 0) {
              twice.getAndAccumulate(word, bit, (a, b) -> a | b);
            }
          }
        }
        for (FieldVector v : root.getFieldVectors()) {
          if (!v.getName().equals(Protocol.SAMPLE_ID_COLUMN)) {
            bytes += v.getBufferSize();
          }
        }
        String p = check.check(req.rank(), root, meta);
        if (p != null) {
          bad++;
          if (problem == null) {
            problem = p;
          }
        }
        batches++;
        rows += count;
        padded += meta.padded();
        shm += meta.delivery() == io.sluice.client.Delivery.SHM ? 1 : 0;
      }
    }
    return new RankResult(batches, rows, padded, bytes, firstMicros, bad, problem, shm);
  }
}
