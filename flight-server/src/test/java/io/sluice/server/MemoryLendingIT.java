package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.Delivery;
import io.sluice.client.RankStream;
import io.sluice.client.ShmLayout;
import io.sluice.client.ShmSlot;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.demo.DemoDataset;
import io.sluice.server.TokenStreams.Seen;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MemorySplit}: delivery memory that idles is lent to a cache that evicts, and comes back
 * the moment delivery needs it: for a stream's ring, and for a batch that fits delivery's share.
 */
class MemoryLendingIT {
  private static final long BUDGET = 256L << 20; // 128 MiB of cache, 128 MiB for delivery
  private static final int SEQ_LEN = 2048; // 4 KiB samples
  private static final int SAMPLES = 48_000;
  @TempDir static Path dir;
  private final BufferAllocator clientAllocator = new RootAllocator();

  @BeforeAll
  static void dataset() throws Exception {
    DemoDataset.ensure(dir, 3, SAMPLES / 3, SEQ_LEN); // 196 MB: over the cache's share
  }

  @AfterEach
  void leaks() {
    clientAllocator.close();
  }

  private static SluiceDaemon start() throws Exception {
    return SluiceDaemon.start(
        "127.0.0.1", 0, Map.of("big", dir), FlightTransport.AUTO, "auto", BUDGET);
  }

  /**
   * Reads whole epochs of batch 64 until the daemon lends its cache delivery memory, then opens the
   * next epoch and reads one batch of it: a running stream whose job holds the loan.
   */
  private RankStream borrowingStream(SluiceDaemon d, SluiceClient client) {
    StreamRequest req = StreamRequest.of("big", 0, 1, 64).withSeed(5);
    long deadline = System.nanoTime() + 120_000_000_000L;
    int epoch = 0;
    while (d.lentBytes() == 0) {
      assertTrue(System.nanoTime() < deadline, "nothing lent to an evicting cache in 120 s");
      try (RankStream s = client.open(req.withEpoch(epoch++))) {
        while (s.next()) {
          // every batch, so the cache evicts
        }
      }
    }
    RankStream s = client.open(req.withEpoch(epoch));
    assertTrue(s.next());
    return s;
  }

  /**
   * Waits for the loan to be back: at once but for the pages of samples being read or copied in the
   * slabs drained, which follow within milliseconds.
   */
  private static void awaitNothingLent(SluiceDaemon d) throws InterruptedException {
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (d.lentBytes() > 0 && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertEquals(0, d.lentBytes(), "the loan came back");
  }

  /**
   * The borrowing stream, whose samples sat in the slabs drained (read, reserved or pinned as the
   * loan went back), reads the rest of its epoch with every token right and no sample twice.
   */
  private static void readsTheRestRight(RankStream borrower) {
    java.util.Set<Long> seen = new java.util.HashSet<>();
    int batches = 0;
    while (borrower.next()) {
      for (long id : TokenStreams.checkedIds(borrower, SEQ_LEN)) {
        assertTrue(seen.add(id), "sample " + id + " twice");
      }
      batches++;
    }
    assertEquals(SAMPLES / 64 - 1, batches, "the rest of the epoch after its first batch");
  }

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void aRingGetsItsWholeSizeBackFromTheCache() throws Exception {
    try (SluiceDaemon d = start();
        SluiceClient client = SluiceClient.connect(d.uri(), clientAllocator);
        RankStream borrower = borrowingStream(d, client)) {
      long lent = d.lentBytes();
      assertEquals(MemorySplit.STEP_BYTES, lent, "one step: the rest is delivery's headroom");
      // 2048 x 4 KiB = 8 MiB a batch: 8 ring slots are 64 MiB, more than delivery has left. The
      // ring's size is read off its region file: which offsets the batches land on says nothing,
      // since placement starts over at the ring's start whenever the client has released them all.
      StreamRequest req =
          StreamRequest.of("big", 0, 1, 2048).withSeed(5).withDelivery(Delivery.SHM);
      int batches = 0;
      try (RankStream s = client.open(req)) {
        while (batches < 12 && s.next()) {
          TokenStreams.checkedIds(s, SEQ_LEN);
          ShmSlot slot = s.metadata().shm();
          assertEquals(Delivery.SHM, s.metadata().delivery());
          long ringBytes = Files.size(Path.of(slot.region())) - ShmLayout.HEADER_BYTES;
          assertTrue(
              ringBytes >= RankStreamer.RING_SLOTS * slot.length(),
              "a full-size ring: "
                  + ringBytes
                  + " bytes for batches of "
                  + slot.length()
                  + ", not "
                  + RankStreamer.RING_SLOTS);
          batches++;
        }
      }
      assertEquals(12, batches);
      awaitNothingLent(d);
      readsTheRestRight(borrower);
    }
  }

  @Test
  @Timeout(300)
  void aBatchThatFitsDeliverysShareIsNotRefusedWhileTheCacheHoldsPartOfIt() throws Exception {
    try (SluiceDaemon d = start();
        SluiceClient client = SluiceClient.connect(d.uri(), clientAllocator);
        RankStream borrower = borrowingStream(d, client)) {
      assertEquals(MemorySplit.STEP_BYTES, d.lentBytes());
      // 9216 x 4 KiB = 36 MiB a batch, and the stream builds the next while one is queued: two
      // are more than the 64 MiB delivery has while the step is lent, within its 128 MiB share.
      List<Seen> got =
          TokenStreams.read(client, StreamRequest.of("big", 0, 1, 9216).withSeed(9), 4, SEQ_LEN);
      assertEquals(4, got.size());
      assertEquals(9216, got.get(3).ids().length);
      awaitNothingLent(d);
      readsTheRestRight(borrower);
    }
  }
}
