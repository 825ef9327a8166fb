package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.Delivery;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.config.DaemonConfig;
import io.sluice.demo.DemoDataset;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.server.TokenStreams.Seen;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * shm delivery against a real daemon: batches read in place from shared memory by the Java client,
 * exactly once, resumable, and every region and buffer given back when streams end or are dropped.
 */
class ShmDeliveryIT {
  static final int SHARDS = 3;
  static final int PER_SHARD = 337;
  static final int SEQ_LEN = 24;
  static final long N = (long) SHARDS * PER_SHARD;

  @TempDir static Path dir;
  static SluiceDaemon daemon;
  static BufferAllocator clientAllocator;

  @BeforeAll
  static void start() throws Exception {
    DemoDataset.ensure(dir, SHARDS, PER_SHARD, SEQ_LEN);
    daemon = SluiceDaemon.start("127.0.0.1", 0, Map.of("t", dir));
    clientAllocator = new RootAllocator(Long.MAX_VALUE);
  }

  @AfterAll
  static void stop() throws Exception {
    daemon.close();
    clientAllocator.close();
  }

  static List<Seen> read(SluiceDaemon d, StreamRequest req, int max, int seqLen) {
    return TokenStreams.read(d.uri(), clientAllocator, req, max, seqLen);
  }

  static List<List<Seen>> readAllRanks(StreamRequest base) throws Exception {
    return TokenStreams.readAllRanks(daemon.uri(), clientAllocator, base, SEQ_LEN);
  }

  static void awaitNoRegions(SluiceDaemon d) throws Exception {
    long deadline = System.nanoTime() + 10_000_000_000L;
    while ((d.liveShmRegions() > 0 || d.allocatedBytes() > 0) && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertEquals(0, d.liveShmRegions(), "shm regions left after their streams ended");
    assertEquals(0, d.allocatedBytes(), "daemon buffers left after their streams ended");
  }

  @ParameterizedTest(name = "{0} concurrent ranks")
  @ValueSource(ints = {4, 8})
  void concurrentRanksReadEverySampleOnceFromSharedMemory(int world) throws Exception {
    assertNull(daemon.shmUnavailableCause());
    StreamRequest base = StreamRequest.of("t", 0, world, 16).withDelivery(Delivery.SHM).withSeed(7);
    List<List<Seen>> ranks = readAllRanks(base);
    TreeSet<Long> seen = new TreeSet<>();
    long total = 0;
    for (List<Seen> rank : ranks) {
      assertEquals(ranks.get(0).size(), rank.size(), "every rank gets the same number of batches");
      for (Seen s : rank) {
        assertEquals(Delivery.SHM, s.meta().delivery());
        assertNotNull(s.meta().shm());
        for (long id : s.ids()) {
          seen.add(id);
        }
        total += s.ids().length - s.meta().padded();
      }
    }
    assertEquals(N, total, "samples delivered, padding excluded");
    assertEquals(N, seen.size(), "every sample at least once");
    assertEquals(0, seen.first());
    assertEquals(N - 1, seen.last());
    awaitNoRegions(daemon);
  }

  @Test
  void shmAndCpuDeliverTheSameBatches() throws Exception {
    StreamRequest cpu = StreamRequest.of("t", 1, 3, 10).withSeed(3).withShuffle("block");
    List<Seen> a = read(daemon, cpu, Integer.MAX_VALUE, SEQ_LEN);
    List<Seen> b = read(daemon, cpu.withDelivery(Delivery.SHM), Integer.MAX_VALUE, SEQ_LEN);
    assertEquals(a.size(), b.size());
    for (int i = 0; i < a.size(); i++) {
      assertEquals(Delivery.CPU, a.get(i).meta().delivery());
      assertEquals(Delivery.SHM, b.get(i).meta().delivery());
      assertEquals(a.get(i).meta().cursor(), b.get(i).meta().cursor());
      assertTrue(java.util.Arrays.equals(a.get(i).ids(), b.get(i).ids()), "step " + i);
    }
  }

  @Test
  void resumeAtACursorWithAnotherWorldSizeOverShm() throws Exception {
    StreamRequest four = StreamRequest.of("t", 0, 4, 6).withDelivery(Delivery.SHM);
    List<Seen> first = read(daemon, four, 5, SEQ_LEN);
    long cursor = first.get(4).meta().cursor();
    StreamRequest two = StreamRequest.of("t", 0, 2, 12).withDelivery(Delivery.SHM);
    List<Seen> resumed = read(daemon, two.withStartCursor(cursor), 1, SEQ_LEN);
    List<Seen> straight = read(daemon, two, 6, SEQ_LEN);
    assertTrue(java.util.Arrays.equals(straight.get(5).ids(), resumed.get(0).ids()));
    assertEquals(Delivery.SHM, resumed.get(0).meta().delivery());
  }

  @Test
  void autoTakesShmOnlyForAClientThatProvedItCanMapIt() throws Exception {
    StreamRequest auto = StreamRequest.of("t", 0, 2, 8).withDelivery(Delivery.AUTO);
    assertEquals(Delivery.SHM, read(daemon, auto, 1, SEQ_LEN).get(0).meta().delivery());
    // A plain Flight client (no token) asking auto gets the batches in the stream.
    assertEquals(
        Delivery.CPU,
        read(daemon, auto.withShmToken("not-the-token"), 1, SEQ_LEN).get(0).meta().delivery());
  }

  @Test
  void shmWithoutAValidTokenIsInvalidArgumentNamingTheField() throws Exception {
    try (SluiceClient client = SluiceClient.connect(daemon.uri(), clientAllocator)) {
      for (String token : new String[] {null, "0123", ""}) {
        StreamRequest req = StreamRequest.of("t", 0, 1, 4).withDelivery(Delivery.SHM);
        byte[] json = (token == null ? req : req.withShmToken(token)).toJson();
        FlightRuntimeException e =
            assertThrows(
                FlightRuntimeException.class,
                () -> client.flightForTests().getInfo(FlightDescriptor.command(json)));
        assertEquals(FlightStatusCode.INVALID_ARGUMENT, e.status().code());
        assertTrue(e.getMessage().contains("shm_token"), e.getMessage());
      }
    }
  }

  @Test
  void aClientThatStopsReadingHoldsOnlyItsOwnRingAndClosingFreesIt() throws Exception {
    awaitNoRegions(daemon); // regions of streams other tests closed may still be going
    try (SluiceClient client = SluiceClient.connect(daemon.uri(), clientAllocator)) {
      RankStream stalled = client.open(StreamRequest.of("t", 0, 1, 4).withDelivery(Delivery.SHM));
      // It holds this batch and never moves on: its stream stays open, its region with it.
      assertTrue(stalled.next());
      Thread.sleep(200);
      assertEquals(1, daemon.liveShmRegions());
      // Others are not held up by it.
      List<Seen> other =
          read(daemon, StreamRequest.of("t", 0, 2, 32).withDelivery(Delivery.SHM), 1000, SEQ_LEN);
      assertEquals((N + 63) / 64, other.size());
      TokenStreams.checkedIds(
          stalled, SEQ_LEN); // the held batch is intact: its slot was never reused
      stalled.close();
    }
    awaitNoRegions(daemon);
  }

  @Test
  void closingMidStreamLeaksNoRegionAndNoBuffer() throws Exception {
    for (int i = 0; i < 5; i++) {
      try (SluiceClient client = SluiceClient.connect(daemon.uri(), clientAllocator);
          RankStream s = client.open(StreamRequest.of("t", 0, 1, 8).withDelivery(Delivery.SHM))) {
        assertTrue(s.next());
        assertTrue(s.next());
      }
    }
    awaitNoRegions(daemon);
  }

  @Test
  void withoutSharedMemoryAutoFallsBackAndShmIsRefusedWithTheCause(@TempDir Path own)
      throws Exception {
    Path missing = own.resolve("no-such-mount");
    try (SluiceDaemon d =
        SluiceDaemon.start(
            DaemonConfig.builder()
                .port(0)
                .datasets(Map.of("t", dir))
                .memoryBudgetBytes(Long.MAX_VALUE)
                .shmDir(missing)
                .build(),
            PrefetchOptions.defaults())) {
      assertTrue(d.shmUnavailableCause().contains(missing.toString()), d.shmUnavailableCause());
      List<Seen> auto =
          read(d, StreamRequest.of("t", 0, 1, 8).withDelivery(Delivery.AUTO), 2, SEQ_LEN);
      assertEquals(Delivery.CPU, auto.get(0).meta().delivery());
      try (SluiceClient client = SluiceClient.connect(d.uri(), clientAllocator)) {
        assertNull(client.shmToken());
        assertTrue(client.shmUnavailableCause().contains("no-such-mount"));
        FlightRuntimeException e =
            assertThrows(
                FlightRuntimeException.class,
                () -> client.open(StreamRequest.of("t", 0, 1, 8).withDelivery(Delivery.SHM)));
        assertEquals(FlightStatusCode.UNAVAILABLE, e.status().code());
        assertTrue(e.getMessage().contains("no-such-mount"), e.getMessage());
      }
    }
  }

  @Test
  void aRingTheBudgetCannotHoldSendsBatchesInTheStream(@TempDir Path own) throws Exception {
    int seqLen = 512;
    DemoDataset.ensure(own, 1, 3000, seqLen);
    // 4 MiB in all, no read-ahead: 128 KiB batches fit, a ring (at least 4 MiB) does not.
    try (SluiceDaemon d =
        SluiceDaemon.start(
            "127.0.0.1", 0, Map.of("big", own), FlightTransport.AUTO, "auto", 4L << 20)) {
      List<Seen> got =
          read(d, StreamRequest.of("big", 0, 1, 128).withDelivery(Delivery.SHM), 20, seqLen);
      assertEquals(20, got.size());
      for (Seen s : got) {
        assertEquals(Delivery.CPU, s.meta().delivery());
      }
      awaitNoRegions(d);
    }
  }

  @Test
  void aDaemonsFolderIsPrivateAndGoneAfterClose(@TempDir Path own) throws Exception {
    Path mount = Files.createDirectory(own.resolve("shm"));
    SluiceDaemon d =
        SluiceDaemon.start(
            DaemonConfig.builder()
                .port(0)
                .datasets(Map.of("t", dir))
                .memoryBudgetBytes(Long.MAX_VALUE)
                .shmDir(mount)
                .build(),
            PrefetchOptions.defaults());
    try (var list = Files.list(mount)) {
      Path folder = list.findFirst().orElseThrow();
      assertEquals(
          "rwx------",
          java.nio.file.attribute.PosixFilePermissions.toString(
              Files.getPosixFilePermissions(folder)));
    }
    read(d, StreamRequest.of("t", 0, 1, 8).withDelivery(Delivery.SHM), 3, SEQ_LEN);
    d.close();
    try (var list = Files.list(mount)) {
      assertEquals(0, list.count());
    }
  }
}
