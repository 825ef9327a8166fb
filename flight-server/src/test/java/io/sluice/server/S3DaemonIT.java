package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.StreamRequest;
import io.sluice.demo.DemoDataset;
import io.sluice.format.IndexProgress;
import io.sluice.format.tokens.TokenDtype;
import io.sluice.format.tokens.TokensFormat;
import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3Settings;
import io.sluice.s3.S3Store;
import io.sluice.s3test.FaultProxy;
import io.sluice.s3test.FaultProxy.Fault;
import io.sluice.s3test.S3TestServer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

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
    Path local = dir.resolve("tokens");
    DemoDataset.ensure(local, SHARDS, PER_SHARD, SEQ_LEN);
    Path shards = Files.createDirectories(dir.resolve("upload"));
    try (var files = Files.list(local)) {
      for (Path p : files.filter(f -> f.toString().endsWith(".bin")).toList()) {
        Files.copy(p, shards.resolve(p.getFileName()));
      }
    }
    server = S3TestServer.start(dir.resolve("s3proxy"));
    server.createBucket(BUCKET);
    server.uploadFolder(shards, BUCKET, "tokens");
    // Indexed once, in this JVM, straight against the server (the daemon only reads).
    S3Settings settings =
        S3Settings.defaults(dir.resolve("meta"))
            .resolve(Map.of("AWS_ENDPOINT_URL", server.endpoint().toString()));
    try (S3FileSystem fs =
        S3FileSystem.open(
            S3Store.open(
                settings,
                StaticCredentialsProvider.create(
                    AwsBasicCredentials.create(server.accessKey(), server.secretKey()))))) {
      TokensFormat.index(
          fs.path("s3://" + BUCKET + "/tokens"), TokenDtype.UINT16, SEQ_LEN, IndexProgress.NONE);
    }
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
        String metrics = metrics(daemon.output());
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
            counter(metrics, "sluice_s3_requests_total"),
            counter(metrics, "sluice_s3_retries_total"),
            counter(metrics, "sluice_s3_timeouts_total"),
            counter(metrics, "sluice_s3_hedges_total"),
            counter(metrics, "sluice_s3_hedges_won_total"));
        assertTrue(counter(metrics, "sluice_s3_retries_total") > 0, metrics);
        assertTrue(counter(metrics, "sluice_s3_timeouts_total") > 0, metrics);
        assertEquals(0, counter(metrics, "sluice_s3_failures_total"), metrics);
        assertTrue(counter(metrics, "sluice_bytes_read_total{backend=\"s3\"}") > 0, metrics);
      }
    }
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void aSpillTierServesTheNextEpochWithoutGoingBackToTheStore() throws Exception {
    // 160 MB of samples, the memory cache 128 MiB: without the spill tier most of epoch 1 would
    // come from the store again.
    Path local = dir.resolve("big");
    DemoDataset.ensure(local, 4, 10_000, 2048);
    Path upload = Files.createDirectories(dir.resolve("big-upload"));
    try (var files = Files.list(local)) {
      for (Path p : files.filter(f -> f.toString().endsWith(".bin")).toList()) {
        Files.copy(p, upload.resolve(p.getFileName()));
      }
    }
    server.uploadFolder(upload, BUCKET, "big");
    Path spill = Files.createDirectories(dir.resolve("spill"));
    Map<String, String> env = new HashMap<>(server.awsEnvironment());
    env.put("SLUICE_S3_SPILL_DIR", spill.toString());
    env.put("SLUICE_S3_SPILL_BUDGET", "512m");
    index("big", 2048);
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
        double read = counter(metrics(daemon.output()), "sluice_bytes_read_total{backend=\"s3\"}");
        storeBytes[epoch] = read - before;
        before = read;
      }
      String metrics = metrics(daemon.output());
      double hits = counter(metrics, "sluice_spill_hits_total");
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

  private static void index(String prefix, int seqLen) throws Exception {
    S3Settings settings =
        S3Settings.defaults(dir.resolve("meta"))
            .resolve(Map.of("AWS_ENDPOINT_URL", server.endpoint().toString()));
    try (S3FileSystem fs =
        S3FileSystem.open(
            S3Store.open(
                settings,
                StaticCredentialsProvider.create(
                    AwsBasicCredentials.create(server.accessKey(), server.secretKey()))))) {
      TokensFormat.index(
          fs.path("s3://" + BUCKET + "/" + prefix), TokenDtype.UINT16, seqLen, IndexProgress.NONE);
    }
  }

  /** The daemon's /metrics text; its address is on the serving line. */
  private static String metrics(String output) throws Exception {
    Matcher m = Pattern.compile("metrics=(http://\\S+)").matcher(output);
    assertTrue(m.find(), output);
    try (HttpClient http = HttpClient.newHttpClient()) {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(URI.create(m.group(1) + "/metrics")).build(),
              HttpResponse.BodyHandlers.ofString());
      assertEquals(200, r.statusCode());
      return r.body();
    }
  }

  private static double counter(String metrics, String series) {
    for (String line : metrics.split("\n")) {
      if (line.startsWith(series + " ")) {
        return Double.parseDouble(line.substring(series.length() + 1).trim());
      }
    }
    throw new AssertionError(series + " not in:\n" + metrics);
  }
}
