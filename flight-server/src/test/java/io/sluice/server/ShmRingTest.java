package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.ShmLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The shm ring's placement: in order, wrapping, never over a message the client holds. */
class ShmRingTest {
  @TempDir Path dir;

  @Test
  void messagesWrapAroundOnlyOverReleasedOnes() throws Exception {
    try (BufferAllocator budget = new RootAllocator(1 << 20);
        ShmRing ring = ShmRing.create(dir.resolve("r"), 1000, budget)) {
      // 64-byte aligned sizes: 320 each, three fit in 1000 bytes (960), a fourth does not.
      long a = ring.place(300, () -> true);
      long b = ring.place(300, () -> true);
      long c = ring.place(300, () -> true);
      assertEquals(ShmLayout.HEADER_BYTES, a);
      assertEquals(a + 320, b);
      assertEquals(b + 320, c);
      assertEquals(-1, ring.place(300, () -> true), "full: nothing released yet");
      ShmLayout.release(ring.region(), 0); // the client is done with the first
      assertEquals(a, ring.place(300, () -> true), "wraps to the start over the released one");
      assertEquals(-1, ring.place(10, () -> true), "wrapped: only [tail, oldest) is free, none");
      ShmLayout.release(ring.region(), 2);
      assertEquals(1, ring.unreleased());
      assertEquals(a + 320, ring.place(600, () -> true), "after the newest, up to the end");
      assertEquals(5, ring.nextSeq());
    }
  }

  @Test
  void placeWaitsForTheClientAndGivesUpWhenTheStreamStops() throws Exception {
    try (BufferAllocator budget = new RootAllocator(1 << 20);
        ShmRing ring = ShmRing.create(dir.resolve("r"), 640, budget)) {
      ring.place(600, () -> true);
      CompletableFuture<Long> waiting =
          CompletableFuture.supplyAsync(() -> ring.place(600, () -> false));
      Thread.sleep(50);
      assertFalse(waiting.isDone(), "must wait while the client holds the only slot");
      ShmLayout.release(ring.region(), 0);
      assertEquals(ShmLayout.HEADER_BYTES, waiting.get(5, TimeUnit.SECONDS));

      AtomicBoolean stop = new AtomicBoolean();
      CompletableFuture<Long> stopped =
          CompletableFuture.supplyAsync(() -> ring.place(600, stop::get));
      Thread.sleep(20);
      stop.set(true);
      assertEquals(-1, stopped.get(5, TimeUnit.SECONDS));
      assertThrows(IllegalArgumentException.class, () -> ring.place(700, () -> true));
    }
  }

  @Test
  void theRegionIsReservedFromTheBudgetAndRemovedOnClose() throws Exception {
    Path file = dir.resolve("r");
    try (BufferAllocator budget = new RootAllocator(1 << 20)) {
      assertNull(ShmRing.create(dir.resolve("too-big"), 2 << 20, budget), "over the budget");
      assertFalse(Files.exists(dir.resolve("too-big")));
      ShmRing ring = ShmRing.create(file, 512 << 10, budget);
      assertTrue(budget.getHeadroom() < 512 << 10, "the ring's bytes are held from the budget");
      assertEquals(ShmLayout.HEADER_BYTES + (512L << 10), Files.size(file));
      assertEquals(512 << 10, ShmLayout.checkHeader(ring.region(), file.toString()));
      assertEquals(
          "rw-------",
          java.nio.file.attribute.PosixFilePermissions.toString(
              Files.getPosixFilePermissions(file)));
      ring.close();
      assertFalse(Files.exists(file));
      assertEquals(1 << 20, budget.getHeadroom());
    }
  }
}
