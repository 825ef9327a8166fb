package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.StreamRequest;
import io.sluice.s3test.FaultProxy;
import io.sluice.s3test.FaultProxy.Fault;
import io.sluice.s3test.S3TestServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon, as {@code sluice serve} runs it, serving a dataset straight from an S3-compatible
 * server (s3proxy) with faults injected between them: 5xx answers, reset connections, truncated
 * bodies and answers slower than the try's timeout. Every rank still gets every sample of two
 * epochs exactly once with every token right, and the metrics show the retries that made it so.
 */
class S3DaemonIT {
  private static final int SEQ_LEN = 256;
  private static final int SHARDS = 4;
  private static final int PER_SHARD = 1500;
  private static final String BUCKET = "train";

  @TempDir static Path dir;
  static S3TestServer server;
  static BufferAllocator clientAllocator;

  @BeforeAll
  static void data() throws Exception {
    server = S3TestServer.start(dir.resolve("s3proxy"));
    server.createBucket(BUCKET);
    BucketTokens.upload(server, dir, BUCKET, "tokens", SHARDS, PER_SHARD, SEQ_LEN);
    clientAllocator = new RootAllocator(Long.MAX_VALUE);
  }

  @AfterAll
  static void close() throws Exception {
    if (clientAllocator != null) {
      clientAllocator.close(); // fails if a client batch leaked
    }
    if (server != null) {
      server.close();
    }
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void twoEpochsArriveExactlyOnceThroughInjectedFaults() throws Exception {
    try (FaultProxy proxy = FaultProxy.start(server.endpoint())) {
      Fault[] faults = {
        Fault.ERROR_503,
        Fault.ERROR_500,
        Fault.RESET,
        Fault.RESET_MID_BODY,
        Fault.TRUNCATE,
        Fault.delay(2_500)
      };
      // Each kind twice on the first ranged GETs (an epoch of this size is a handful of chunked
      // reads), then 12% at random.
      AtomicInteger ranged = new AtomicInteger();
      Random random = new Random(11);
      proxy.onRequest(
          r -> {
            if (!r.isRangedGet()) {
              return Fault.PASS;
            }
            int n = ranged.getAndIncrement();
            if (n < 2 * faults.length) {
              return faults[n % faults.length];
            }
            synchronized (random) {
              return random.nextDouble() < 0.12
                  ? faults[random.nextInt(faults.length)]
                  : Fault.PASS;
            }
          });
      Map<String, String> env = new HashMap<>(server.awsEnvironment());
      env.put("AWS_ENDPOINT_URL", proxy.endpoint().toString());
      env.put("SLUICE_S3_ATTEMPT_TIMEOUT_MS", "1000");
      env.put("SLUICE_S3_MAX_ATTEMPTS", "20");
      try (DaemonProcess daemon =
          DaemonProcess.start(
              256L << 20,
              env,
              "--port",
              "0",
              "--metrics-port",
              "0",
              "--memory-budget",
              "512m",
              "--dataset",
              "tok=s3://" + BUCKET + "/tokens")) {
        long n = (long) SHARDS * PER_SHARD;
        for (long epoch = 0; epoch < 2; epoch++) {
          StreamRequest base =
              StreamRequest.of("tok", 0, 2, 32).withSeed(5).withEpoch(epoch).withShuffle("global");
          List<List<TokenStreams.Seen>> ranks =
              TokenStreams.readAllRanks(daemon.uri(), clientAllocator, base, SEQ_LEN);
          int[] counts = TokenStreams.counts(ranks.stream().flatMap(List::stream).toList(), n);
          for (int id = 0; id < n; id++) {
            assertEquals(
                1, counts[id], "epoch " + epoch + " sample " + id + "\n" + daemon.output());
          }
        }
        String metrics = daemon.metrics();
        assertTrue(proxy.faultsInjected() > 0, "the proxy injected faults");
        for (Fault f : faults) {
          assertTrue(
              proxy.faultsInjected(f.kind()) > 0, f.kind() + " was injected: " + proxy.requests());
        }
        System.out.printf(
            "S3DaemonIT: %d requests through the proxy, %d faults; daemon: %.0f s3 requests,"
                + " %.0f retries, %.0f timeouts, %.0f hedges (%.0f won)%n",
            proxy.requests(),
            proxy.faultsInjected(),
            DaemonProcess.counter(metrics, "sluice_s3_requests_total"),
            DaemonProcess.counter(metrics, "sluice_s3_retries_total"),
            DaemonProcess.counter(metrics, "sluice_s3_timeouts_total"),
            DaemonProcess.counter(metrics, "sluice_s3_hedges_total"),
            DaemonProcess.counter(metrics, "sluice_s3_hedges_won_total"));
        assertTrue(DaemonProcess.counter(metrics, "sluice_s3_retries_total") > 0, metrics);
        assertTrue(DaemonProcess.counter(metrics, "sluice_s3_timeouts_total") > 0, metrics);
        assertEquals(0, DaemonProcess.counter(metrics, "sluice_s3_failures_total"), metrics);
        assertTrue(
            DaemonProcess.counter(metrics, "sluice_bytes_read_total{backend=\"s3\"}") > 0, metrics);
      }
    }
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void aSpillTierServesTheNextEpochWithoutGoingBackToTheStore() throws Exception {
    // 160 MB of samples, the memory cache 128 MiB: without the spill tier most of epoch 1 would
    // come from the store again.
    BucketTokens.upload(server, dir, BUCKET, "big", 4, 10_000, 2048);
    Path spill = Files.createDirectories(dir.resolve("spill"));
    Map<String, String> env = new HashMap<>(server.awsEnvironment());
    env.put("SLUICE_S3_SPILL_DIR", spill.toString());
    env.put("SLUICE_S3_SPILL_BUDGET", "512m");
    // The memory cache kept at its half of the budget: lent the idle batch memory, it would hold
    // nearly all 160 MB, and this test is about what memory cannot hold.
    env.put("JAVA_TOOL_OPTIONS", "-D" + MemorySplit.LEND_PROPERTY + "=false");
    try (DaemonProcess daemon =
        DaemonProcess.start(
            256L << 20,
            env,
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--memory-budget",
            "256m",
            "--dataset",
            "big=s3://" + BUCKET + "/big")) {
      long n = 40_000;
      double[] storeBytes = new double[2];
      double before = 0;
      for (int epoch = 0; epoch < 2; epoch++) {
        StreamRequest base =
            StreamRequest.of("big", 0, 2, 64).withSeed(9).withEpoch(epoch).withShuffle("global");
        List<List<TokenStreams.Seen>> ranks =
            TokenStreams.readAllRanks(daemon.uri(), clientAllocator, base, 2048);
        int[] counts = TokenStreams.counts(ranks.stream().flatMap(List::stream).toList(), n);
        for (int id = 0; id < n; id++) {
          assertEquals(1, counts[id], "epoch " + epoch + " sample " + id);
        }
        double read =
            DaemonProcess.counter(daemon.metrics(), "sluice_bytes_read_total{backend=\"s3\"}");
        storeBytes[epoch] = read - before;
        before = read;
      }
      String metrics = daemon.metrics();
      double hits = DaemonProcess.counter(metrics, "sluice_spill_hits_total");
      System.out.printf(
          "S3DaemonIT spill: epoch 0 read %.0f MB from the store, epoch 1 %.0f MB; %.0f spill hits%n",
          storeBytes[0] / 1e6, storeBytes[1] / 1e6, hits);
      // The rest of epoch 1 is in the memory cache still, or read by streams that got there first.
      assertTrue(hits > n / 4, "a good part of epoch 1 came from the spill tier: " + hits);
      assertTrue(
          storeBytes[1] < storeBytes[0] / 3,
          "epoch 1 read " + storeBytes[1] + " bytes from the store, epoch 0 " + storeBytes[0]);
      try (var files = Files.list(spill)) {
        assertEquals(0, files.count(), "the spill file is unlinked: nothing to clean up");
      }
    }
  }
}
