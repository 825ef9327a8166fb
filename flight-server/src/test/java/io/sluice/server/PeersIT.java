package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.s3test.S3TestServer;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job on three nodes: three daemons ({@code sluice serve --peers ... --node-rank I}, each its own
 * process) serving one dataset from an S3-compatible bucket (s3proxy) to a world of six ranks, two
 * per node. Over two epochs every sample reaches exactly one rank with every token right; the
 * second epoch takes from the peers' caches what the plan says they hold, and the store sees fewer
 * bytes. A daemon killed mid-epoch leaves the others to storage with nothing lost or repeated, and
 * its ranks resume on a restarted daemon.
 */
class PeersIT {
  private static final int SEQ_LEN = 256;
  private static final int SHARDS = 4;
  private static final int PER_SHARD = 10_000;
  private static final long N = (long) SHARDS * PER_SHARD;
  private static final int NODES = 3;
  private static final int WORLD = 6;
  private static final int BATCH = 16;
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
      clientAllocator.close();
    }
    if (server != null) {
      server.close();
    }
  }

  private static String freePeers() throws Exception {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < NODES; i++) {
      try (ServerSocket s = new ServerSocket(0)) {
        out.add("127.0.0.1:" + s.getLocalPort());
      }
    }
    return String.join(",", out);
  }

  private static DaemonProcess node(int rank, String peers, String transport) throws Exception {
    return node(rank, peers, transport, Map.of());
  }

  private static DaemonProcess node(
      int rank, String peers, String transport, Map<String, String> extraEnv) throws Exception {
    Map<String, String> env = new HashMap<>(server.awsEnvironment());
    env.putAll(extraEnv);
    return DaemonProcess.start(
        256L << 20,
        env,
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--memory-budget",
        "512m",
        "--peers",
        peers,
        "--node-rank",
        Integer.toString(rank),
        "--peer-transport",
        transport,
        "--dataset",
        "tok=s3://" + BUCKET + "/tokens");
  }

  private static StreamRequest request(long epoch) {
    return StreamRequest.of("tok", 0, WORLD, BATCH)
        .withSeed(3)
        .withEpoch(epoch)
        .withShuffle("global");
  }

  /** Rank {@code r} of {@code epoch} from its node's daemon, to the end, every token checked. */
  private static List<TokenStreams.Seen> readRank(DaemonProcess[] nodes, long epoch, int r) {
    return TokenStreams.read(
        nodes[r / (WORLD / NODES)].uri(),
        clientAllocator,
        request(epoch).withRank(r),
        Integer.MAX_VALUE,
        SEQ_LEN);
  }

  /** Every rank of {@code epoch} at once, each from its own node. */
  private static List<TokenStreams.Seen> readEpoch(DaemonProcess[] nodes, long epoch)
      throws Exception {
    try (ExecutorService pool = Executors.newFixedThreadPool(WORLD)) {
      List<Future<List<TokenStreams.Seen>>> fs = new ArrayList<>();
      for (int r = 0; r < WORLD; r++) {
        int rank = r;
        fs.add(pool.submit(() -> readRank(nodes, epoch, rank)));
      }
      List<TokenStreams.Seen> all = new ArrayList<>();
      for (Future<List<TokenStreams.Seen>> f : fs) {
        all.addAll(f.get());
      }
      return all;
    }
  }

  private static void assertExactlyOnce(List<TokenStreams.Seen> batches, String what) {
    int[] counts = TokenStreams.counts(batches, N);
    for (int id = 0; id < N; id++) {
      assertEquals(1, counts[id], what + ": sample " + id);
    }
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void theSecondEpochComesFromPeersAndEverySampleOnce() throws Exception {
    String peers = freePeers();
    DaemonProcess[] nodes = new DaemonProcess[NODES];
    try {
      for (int i = 0; i < NODES; i++) {
        // No fetch may time out here: one that did would be counted as served by one node and
        // not as fetched by the other (5 JVMs on a loaded 2-core machine can be that slow).
        nodes[i] = node(i, peers, "ucx", Map.of("SLUICE_PEER_TIMEOUT_MS", "60000"));
        assertTrue(nodes[i].output().contains("over ucx"), nodes[i].output());
      }
      double[] store = new double[2];
      double[] fromPeers = new double[2];
      for (int epoch = 0; epoch < 2; epoch++) {
        assertExactlyOnce(readEpoch(nodes, epoch), "epoch " + epoch);
        store[epoch] =
            sum(nodes, "sluice_bytes_read_total{backend=\"s3\"}") - (epoch == 0 ? 0 : store[0]);
        fromPeers[epoch] = sum(nodes, "sluice_peer_bytes_total") - (epoch == 0 ? 0 : fromPeers[0]);
      }
      double served = sum(nodes, "sluice_peer_served_bytes_total");
      System.out.printf(
          "PeersIT (ucx): store bytes epoch 0 %.1f MB, epoch 1 %.1f MB; peer bytes epoch 1 %.1f MB%n",
          store[0] / 1e6, store[1] / 1e6, fromPeers[1] / 1e6);
      assertEquals(0, fromPeers[0], "nobody holds anything in epoch 0");
      // Two thirds of each node's epoch-1 samples were consumed by another node in epoch 0.
      assertTrue(
          fromPeers[1] > N * SEQ_LEN * 2 / 3.0 * 0.5, "peer bytes in epoch 1: " + fromPeers[1]);
      assertEquals(fromPeers[1], served, "what the nodes fetched is what they served each other");
      assertTrue(
          store[1] < store[0] / 2, "store bytes: epoch 0 " + store[0] + ", epoch 1 " + store[1]);
      assertEquals(0, sum(nodes, "sluice_peer_failures_total{kind=\"unreachable\"}"));
    } finally {
      closeAll(nodes);
    }
  }

  @Test
  @Timeout(300)
  void aNodeKilledMidEpochLeavesTheOthersWholeOnStorage() throws Exception {
    String peers = freePeers();
    DaemonProcess[] nodes = new DaemonProcess[NODES];
    try {
      for (int i = 0; i < NODES; i++) {
        nodes[i] = node(i, peers, "tcp");
      }
      assertExactlyOnce(readEpoch(nodes, 0), "epoch 0");
      // Epoch 1: the ranks of nodes 0 and 1 open their streams; once all are open, node 2 dies
      // (SIGKILL). Not after a first batch: a rank's whole epoch (3.4 MB) is under what a stream
      // may send ahead, so by then the survivors could have fetched all they need from node 2.
      int survivors = 2 * (WORLD / NODES);
      CountDownLatch started = new CountDownLatch(survivors);
      List<TokenStreams.Seen> epoch1 = new ArrayList<>();
      try (ExecutorService pool = Executors.newFixedThreadPool(survivors)) {
        List<Future<List<TokenStreams.Seen>>> fs = new ArrayList<>();
        for (int r = 0; r < survivors; r++) {
          int rank = r;
          DaemonProcess node = nodes[r / (WORLD / NODES)];
          fs.add(
              pool.submit(
                  () -> {
                    List<TokenStreams.Seen> out = new ArrayList<>();
                    try (SluiceClient c = SluiceClient.connect(node.uri(), clientAllocator);
                        RankStream s = c.open(request(1).withRank(rank))) {
                      started.countDown();
                      started.await(60, TimeUnit.SECONDS);
                      while (s.next()) {
                        out.add(
                            new TokenStreams.Seen(
                                s.metadata(), TokenStreams.checkedIds(s, SEQ_LEN)));
                      }
                    }
                    return out;
                  }));
        }
        assertTrue(started.await(60, TimeUnit.SECONDS), "the survivors' streams opened");
        nodes[2].kill();
        for (Future<List<TokenStreams.Seen>> f : fs) {
          epoch1.addAll(f.get());
        }
      }
      String m0 = nodes[0].metrics();
      String m1 = nodes[1].metrics();
      double failures =
          DaemonProcess.counter(m0, "sluice_peer_failures_total{kind=\"unreachable\"}")
              + DaemonProcess.counter(m1, "sluice_peer_failures_total{kind=\"unreachable\"}")
              + DaemonProcess.counter(m0, "sluice_peer_failures_total{kind=\"timeout\"}")
              + DaemonProcess.counter(m1, "sluice_peer_failures_total{kind=\"timeout\"}");
      // The dead node's ranks restart from their checkpoint (cursor 0) on a new daemon there.
      nodes[2] = node(2, peers, "tcp");
      for (int r = survivors; r < WORLD; r++) {
        epoch1.addAll(readRank(nodes, 1, r));
      }
      assertExactlyOnce(epoch1, "epoch 1 with node 2 killed and restarted");
      System.out.printf(
          "PeersIT (tcp): node 2 killed mid-epoch; %.0f failed fetches fell back to storage;"
              + " peer bytes %.1f MB%n",
          failures, sum(nodes, "sluice_peer_bytes_total") / 1e6);
      assertTrue(failures > 0, "the survivors noticed the dead peer:\n" + m0 + "\n" + m1);
    } finally {
      closeAll(nodes);
    }
  }

  @Test
  @Timeout(300)
  void whereUcxCannotRunAutoTakesTcpAndSaysWhyWhileAnExplicitUcxFailsAtStart() throws Exception {
    // UCX made unavailable the way a host without libucx0 would see it, in the daemons only.
    Map<String, String> noUcx = Map.of("JAVA_TOOL_OPTIONS", "-Dsluice.ucx.disable=true");
    String peers = freePeers();
    AssertionError refused = null;
    try (DaemonProcess explicit = node(0, peers, "ucx", noUcx)) {
      throw new AssertionError("an explicit ucx started without UCX:\n" + explicit.output());
    } catch (AssertionError e) {
      refused = e;
    }
    assertTrue(
        refused.getMessage().contains("peer.transport=ucx: ucx unavailable: UCX disabled by"),
        refused.getMessage());
    DaemonProcess[] nodes = new DaemonProcess[NODES];
    try {
      for (int i = 0; i < NODES; i++) {
        nodes[i] = node(i, peers, "auto", noUcx);
        String out = nodes[i].output();
        assertTrue(out.contains("over tcp"), out);
        assertTrue(out.contains("ucx unavailable, using tcp: ucx unavailable: UCX disabled"), out);
      }
      assertExactlyOnce(readEpoch(nodes, 0), "epoch 0 over tcp");
      assertExactlyOnce(readEpoch(nodes, 1), "epoch 1 over tcp");
      assertTrue(sum(nodes, "sluice_peer_bytes_total") > 0, "the fallback transport carries peers");
    } finally {
      closeAll(nodes);
    }
  }

  /** Stops every daemon that started (a slot stays null when its start failed). */
  private static void closeAll(DaemonProcess[] nodes) {
    for (DaemonProcess n : nodes) {
      if (n != null) {
        n.close();
      }
    }
  }

  private static double sum(DaemonProcess[] nodes, String series) throws Exception {
    double s = 0;
    for (DaemonProcess n : nodes) {
      s += DaemonProcess.counter(n.metrics(), series);
    }
    return s;
  }
}
