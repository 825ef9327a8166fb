package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.config.BearerTokens;
import io.sluice.config.DaemonConfig;
import io.sluice.demo.DemoDataset;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.server.TokenStreams.Seen;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon as operators run it, with the Java client: TLS and bearer tokens, the metrics endpoint
 * and the stats action, several datasets and jobs sharing one budget, a stalled client.
 */
class OpsIT {
  static final int SEQ_LEN = 64;
  static final String TOKEN = "f00dfeedc0ffee0123456789abcdef01";

  @TempDir static Path dir;
  static Path a;
  static Path b;
  static final long N_A = 3 * 700;
  static final long N_B = 2 * 900;
  static BufferAllocator clientAllocator;

  @BeforeAll
  static void data() throws Exception {
    a = Files.createDirectories(dir.resolve("a"));
    b = Files.createDirectories(dir.resolve("b"));
    DemoDataset.ensure(a, 3, 700, SEQ_LEN);
    DemoDataset.ensure(b, 2, 900, SEQ_LEN);
    clientAllocator = new RootAllocator(Long.MAX_VALUE);
  }

  @AfterAll
  static void close() {
    clientAllocator.close(); // fails if a client batch leaked
  }

  private static void run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertEquals(0, p.waitFor(), String.join(" ", cmd) + ":\n" + out);
  }

  /** A self-signed certificate for localhost and 127.0.0.1, made by openssl: {cert, key}. */
  private static Path[] certificate(Path where, String name) throws Exception {
    Path cert = where.resolve(name + ".pem");
    Path key = where.resolve(name + "-key.pem");
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key.toString(),
        "-out",
        cert.toString(),
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1");
    return new Path[] {cert, key};
  }

  @Test
  void tlsAndABearerTokenWithTheJavaClient(@TempDir Path own) throws Exception {
    Path[] tls = certificate(own, "daemon");
    Path[] stranger = certificate(own, "stranger");
    Path tokens = own.resolve("tokens");
    Files.writeString(tokens, TOKEN + "\n");
    Files.setPosixFilePermissions(tokens, PosixFilePermissions.fromString("rw-------"));
    DaemonConfig cfg =
        DaemonConfig.builder()
            .port(0)
            .dataset("a", a)
            .memoryBudgetBytes(512L << 20)
            .tls(tls[0], tls[1])
            .tokens(BearerTokens.read("test", tokens))
            .build();
    try (SluiceDaemon d = SluiceDaemon.start(cfg, PrefetchOptions.defaults())) {
      assertTrue(d.uri().startsWith("grpc+tls://"), d.uri());
      StreamRequest req = StreamRequest.of("a", 0, 1, 64);
      try (SluiceClient noToken =
          SluiceClient.connect(d.uri(), clientAllocator, new SluiceClient.Security(null, tls[0]))) {
        FlightRuntimeException e =
            assertThrows(FlightRuntimeException.class, () -> noToken.open(req).close());
        assertEquals(FlightStatusCode.UNAUTHENTICATED, e.status().code());
      }
      try (SluiceClient untrusting =
          SluiceClient.connect(
              d.uri(), clientAllocator, new SluiceClient.Security(TOKEN, stranger[0]))) {
        FlightRuntimeException e =
            assertThrows(FlightRuntimeException.class, () -> untrusting.open(req).close());
        assertEquals(FlightStatusCode.UNAVAILABLE, e.status().code(), e.getMessage());
      }
      try (SluiceClient ok =
          SluiceClient.connect(
              d.uri(), clientAllocator, new SluiceClient.Security(TOKEN, tls[0]))) {
        List<Seen> got = TokenStreams.read(ok, req, Integer.MAX_VALUE, SEQ_LEN);
        int[] counts = TokenStreams.counts(got, N_A);
        assertTrue(Arrays.stream(counts).allMatch(c -> c == 1), "every sample exactly once");
        JsonNode metrics = ok.stats().path("metrics");
        // The call without a token; the untrusting client never got past the TLS handshake.
        assertEquals(1.0, value(metrics, "sluice_errors_total", "unauthenticated"), 0.0);
      }
    }
  }

  private static double value(JsonNode rows, String name, String label) {
    for (JsonNode r : rows) {
      if (r.path("name").asText().equals(name)) {
        for (JsonNode v : r.path("labels")) {
          if (v.asText().equals(label)) {
            return r.path("value").asDouble();
          }
        }
        if (label == null) {
          return r.path("value").asDouble();
        }
      }
    }
    throw new AssertionError("no " + name + " " + label + " in " + rows);
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void eightStreamsOverTwoDatasetsShareOneBudgetAndEachEpochArrivesOnce() throws Exception {
    long budget = 512L << 20;
    DaemonConfig cfg =
        DaemonConfig.builder()
            .port(0)
            .dataset("a", a)
            .dataset("b", b)
            .memoryBudgetBytes(budget)
            .metricsPort(0)
            .build();
    try (SluiceDaemon d = SluiceDaemon.start(cfg, PrefetchOptions.defaults());
        ExecutorService pool = Executors.newFixedThreadPool(9)) {
      AtomicBoolean reading = new AtomicBoolean(true);
      AtomicLong peak = new AtomicLong();
      Future<?> watch =
          pool.submit(
              () -> {
                while (reading.get()) {
                  peak.accumulateAndGet(d.allocatedBytes(), Math::max);
                  Thread.onSpinWait();
                }
              });
      List<Future<List<Seen>>> streams = new ArrayList<>();
      for (String ds : new String[] {"a", "b"}) {
        for (int r = 0; r < 4; r++) {
          StreamRequest req = StreamRequest.of(ds, r, 4, 16).withSeed(ds.equals("a") ? 1 : 2);
          streams.add(
              pool.submit(
                  () ->
                      TokenStreams.read(
                          d.uri(), clientAllocator, req, Integer.MAX_VALUE, SEQ_LEN)));
        }
      }
      List<Seen> gotA = new ArrayList<>();
      List<Seen> gotB = new ArrayList<>();
      for (int i = 0; i < streams.size(); i++) {
        (i < 4 ? gotA : gotB).addAll(streams.get(i).get(240, TimeUnit.SECONDS));
      }
      reading.set(false);
      watch.get();
      assertTrue(Arrays.stream(TokenStreams.counts(gotA, N_A)).allMatch(c -> c == 1));
      assertTrue(Arrays.stream(TokenStreams.counts(gotB, N_B)).allMatch(c -> c == 1));
      assertTrue(
          peak.get() <= d.arrowBudgetBytes(),
          "batch memory peaked at " + peak.get() + " > " + d.arrowBudgetBytes());
      // The cache half of the budget is split between the datasets: neither job may take more
      // than its dataset's share, and both got one (these caches never evict, so none is lent
      // batch memory on top).
      List<ReadEngine.JobStats> jobs = d.readAheadStats();
      assertEquals(2, jobs.size(), jobs.toString());
      for (ReadEngine.JobStats j : jobs) {
        assertTrue(j.cache().budgetBytes() <= budget / 2 / 2, j.toString());
      }
      String metrics = httpGet(d.metricsUri() + "/metrics");
      assertTrue(
          metrics.contains("sluice_delivered_samples_total{dataset=\"a\",delivery=\"cpu\"} "),
          metrics);
      assertEquals("ok\n", httpGet(d.metricsUri() + "/healthz"));
    }
  }

  private static String httpGet(String uri) throws Exception {
    try (HttpClient http = HttpClient.newHttpClient()) {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(URI.create(uri)).build(),
              HttpResponse.BodyHandlers.ofString());
      return r.body();
    }
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void aClientThatStopsReadingHoldsUpNobodyElse() throws Exception {
    // 64 MiB of 8 KiB samples: the stalled rank's half cannot sit in its connection's buffers
    // (gRPC's 8 MiB backpressure threshold, HTTP/2 windows, socket buffers), so its stream in the
    // daemon really waits on it; on a small dataset it would have sent everything and be done.
    int seqLen = 4096;
    long n = 4L * 2048;
    Path big = Files.createDirectories(dir.resolve("big"));
    DemoDataset.ensure(big, 4, 2048, seqLen);
    try (SluiceDaemon d =
            SluiceDaemon.start(
                DaemonConfig.builder()
                    .port(0)
                    .dataset("big", big)
                    .memoryBudgetBytes(512L << 20)
                    .build(),
                PrefetchOptions.defaults());
        SluiceClient stalled = SluiceClient.connect(d.uri(), clientAllocator);
        RankStream s = stalled.open(StreamRequest.of("big", 0, 2, 8).withSeed(5))) {
      assertTrue(s.next()); // rank 0 of job 1 takes one batch, then stops reading
      List<Seen> first = new ArrayList<>();
      first.add(new Seen(s.metadata(), TokenStreams.checkedIds(s, seqLen)));
      // Its job's other rank, and another job of the same dataset, each read a whole epoch
      // while it stalls.
      List<Seen> otherRank =
          TokenStreams.read(
              d.uri(),
              clientAllocator,
              StreamRequest.of("big", 1, 2, 8).withSeed(5),
              Integer.MAX_VALUE,
              seqLen);
      List<Seen> otherJob =
          TokenStreams.read(
              d.uri(),
              clientAllocator,
              StreamRequest.of("big", 0, 1, 32).withSeed(6),
              Integer.MAX_VALUE,
              seqLen);
      assertTrue(Arrays.stream(TokenStreams.counts(otherJob, n)).allMatch(c -> c == 1));
      assertEquals(n / 16, otherRank.size(), "the other rank read its whole epoch");
      // Meanwhile the stalled rank's stream was held back by its client, not finished.
      long taken = stalledBatchesTaken(stalled);
      System.out.printf(
          "OpsIT: the stalled stream had taken %d of %d batches while the others read theirs%n",
          taken, n / 16);
      assertTrue(
          taken > 0 && taken < n / 16 - 64,
          "the stalled stream had taken " + taken + " of " + n / 16 + " batches");
      // It was only waiting: it picks up where it stopped and completes, and with the other
      // rank covers the epoch once.
      while (s.next()) {
        first.add(new Seen(s.metadata(), TokenStreams.checkedIds(s, seqLen)));
      }
      List<Seen> job = new ArrayList<>(first);
      job.addAll(otherRank);
      assertTrue(Arrays.stream(TokenStreams.counts(job, n)).allMatch(c -> c == 1));
    }
  }

  /** Batches the daemon's stream for rank 0 of job (seed 5, batch 8) has taken so far. */
  private static long stalledBatchesTaken(SluiceClient c) {
    JsonNode stats = c.stats();
    for (JsonNode j : stats.get("jobs")) {
      if (j.at("/key/seed").asLong() == 5 && j.at("/key/batch_size").asInt() == 8) {
        for (JsonNode st : j.get("streams")) {
          if (st.get("rank").asInt() == 0) {
            return st.at("/stats/batches").asLong();
          }
        }
      }
    }
    throw new AssertionError("no running stream for rank 0 of the stalled job: " + stats);
  }
}
