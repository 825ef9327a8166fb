package io.sluice.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.sluice.nativeio.HugePageMemory;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link SampleCache#resize}: growing, draining slabs down to a smaller budget, and growing back.
 */
class SampleCacheResizeTest {
  private static final int SAMPLE = 4096;
  private static final long SLAB = 1L << 20; // 256 samples a slab
  private final Arena arena = Arena.ofConfined();

  @BeforeEach
  void needsReleasableMemory() {
    assumeTrue(HugePageMemory.isAvailable(), () -> "" + HugePageMemory.unavailabilityCause());
  }

  @AfterEach
  void closeArena() {
    arena.close();
  }

  private static SampleCache cache(long budget, String policy) {
    return SampleCache.builder()
        .budgetBytes(budget)
        .slabBytes(SLAB)
        .policy(SampleCacheTest.policy(policy))
        .build();
  }

  private MemorySegment bytesOf(long sampleId, int length) {
    MemorySegment s = arena.allocate(length);
    for (int i = 0; i < length; i += 8) {
      s.set(ValueLayout.JAVA_LONG_UNALIGNED, i, sampleId * 1_000_003L + i);
    }
    return s;
  }

  private static void assertBytes(long sampleId, MemorySegment s) {
    for (int i = 0; i + 8 <= s.byteSize(); i += 8) {
      if (s.get(ValueLayout.JAVA_LONG_UNALIGNED, i) != sampleId * 1_000_003L + i) {
        fail("sampleId=" + sampleId + " offset=" + i + " differs");
      }
    }
  }

  private void fill(SampleCache c, long from, long to) {
    for (long id = from; id < to; id++) {
      assertTrue(c.put(id, bytesOf(id, SAMPLE)), "put " + id);
    }
  }

  private static List<Long> cachedIds(SampleCache c, long to) {
    List<Long> ids = new ArrayList<>();
    for (long id = 0; id < to; id++) {
      if (c.contains(id)) {
        ids.add(id);
      }
    }
    return ids;
  }

  @ParameterizedTest
  @ValueSource(strings = {"belady", "lru", "caffeine"})
  void shrinkingDrainsWholeSlabsAndKeepsTheRestIntact(String policy) throws InterruptedException {
    try (SampleCache c = cache(4 * SLAB, policy)) {
      fill(c, 0, 1024); // four full slabs
      assertEquals(4 * SLAB, c.heldBytes());
      c.resize(2 * SLAB);
      assertTrue(c.awaitWithinBudget(0, TimeUnit.SECONDS), "nothing pinned: drained at once");
      assertEquals(2 * SLAB, c.heldBytes());
      assertEquals(2 * SLAB, c.stats().budgetBytes());
      List<Long> kept = cachedIds(c, 1024);
      assertEquals(512, kept.size(), "two slabs' samples left");
      for (long id : kept) {
        try (Handle h = c.pin(id)) {
          assertBytes(id, h.segment());
        }
      }
      c.checkInvariants();
      // A full cache at its new budget evicts through its policy as before.
      fill(c, 2000, 2100);
      assertEquals(2 * SLAB, c.heldBytes());
      c.checkInvariants();
    }
  }

  @Test
  void aPinnedSampleKeepsItsSlabUntilReleasedAndStaysReadable() throws InterruptedException {
    try (SampleCache c = cache(2 * SLAB, "lru")) {
      fill(c, 0, 512);
      // Pin one sample of every slab: each slab has a reason to stay.
      Handle a = c.pin(0);
      Handle b = c.pin(511);
      c.resize(SLAB);
      assertFalse(c.awaitWithinBudget(50, TimeUnit.MILLISECONDS), "a pinned slab cannot go yet");
      assertEquals(SLAB + SAMPLE, c.heldBytes(), "of the draining slab, the pinned page only");
      assertEquals(257, c.stats().entries(), "the draining slab kept only its pinned sample");
      assertBytes(0, a.segment());
      assertBytes(511, b.segment());
      c.checkInvariants();
      // Nothing new goes into a draining slab, and the budget is not exceeded by new slabs.
      fill(c, 1000, 1100);
      assertEquals(SLAB + SAMPLE, c.heldBytes());
      c.checkInvariants();
      a.close();
      b.close();
      assertTrue(c.awaitWithinBudget(1, TimeUnit.SECONDS));
      assertEquals(SLAB, c.heldBytes());
      c.checkInvariants();
    }
  }

  @Test
  void aReservationCommittedIntoADrainingSlabIsDropped() throws InterruptedException {
    try (SampleCache c = cache(2 * SLAB, "belady")) {
      fill(c, 0, 300);
      Reservation r = c.reserve(7777, SAMPLE); // in the second slab, the emptier one
      assertNotNull(r);
      c.resize(SLAB);
      MemorySegment.copy(bytesOf(7777, SAMPLE), 0, r.segment(), 0, SAMPLE);
      r.commit();
      r.close();
      assertNull(c.pin(7777), "its slab is going back: a miss, read again by whoever asks");
      assertTrue(c.awaitWithinBudget(1, TimeUnit.SECONDS));
      assertEquals(SLAB, c.heldBytes());
      c.checkInvariants();
      assertTrue(c.put(7777, bytesOf(7777, SAMPLE)), "room in the remaining slab");
      try (Handle h = c.pin(7777)) {
        assertBytes(7777, h.segment());
      }
    }
  }

  @Test
  void growingAgainTakesTheReturnedSlabsFirstAndTheirMemoryIsClean() throws InterruptedException {
    try (SampleCache c = cache(4 * SLAB, "lru")) {
      fill(c, 0, 1024);
      c.resize(SLAB);
      assertTrue(c.awaitWithinBudget(0, TimeUnit.SECONDS));
      c.resize(4 * SLAB);
      fill(c, 5000, 5768); // three slabs more
      assertEquals(4 * SLAB, c.heldBytes());
      c.checkInvariants();
      for (long id : cachedIds(c, 6000)) {
        try (Handle h = c.pin(id)) {
          assertBytes(id, h.segment());
        }
      }
      assertEquals(1024, cachedIds(c, 6000).size());
    }
  }

  @Test
  void closingWakesAWaiterAndBadBudgetsAreRefused() throws Exception {
    SampleCache c = cache(2 * SLAB, "lru");
    fill(c, 0, 512);
    Handle h = c.pin(3);
    c.resize(SLAB / 2);
    Thread waiter =
        Thread.ofPlatform()
            .start(
                () -> {
                  try {
                    assertTrue(c.awaitWithinBudget(30, TimeUnit.SECONDS));
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                });
    IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> c.resize(8));
    assertTrue(bad.getMessage().contains("budgetBytes=8"), bad.getMessage());
    h.close();
    c.close();
    waiter.join(10_000);
    assertFalse(waiter.isAlive());
    assertEquals(0, c.heldBytes());
  }

  @Test
  void aFileBackedCacheGrowsButCannotShrink(@TempDir Path dir) throws IOException {
    try (SampleCache c =
        SampleCache.builder()
            .budgetBytes(SLAB)
            .slabBytes(SLAB)
            .policy(new LruPolicy())
            .backingFolder(dir)
            .build()) {
      assertFalse(c.canShrink());
      c.resize(2 * SLAB);
      fill(c, 0, 512);
      assertEquals(2 * SLAB, c.heldBytes());
      UnsupportedOperationException e =
          assertThrows(UnsupportedOperationException.class, () -> c.resize(SLAB));
      assertTrue(e.getMessage().contains("cannot shrink"), e.getMessage());
      assertEquals(512, cachedIds(c, 512).size());
    }
  }

  /**
   * Random puts, pins, reservations and resizes: every sample read back has its own bytes, the
   * cache's books balance after every step, and the memory held settles within each budget once
   * nothing is pinned.
   */
  @ParameterizedTest
  @ValueSource(longs = {1, 2, 3})
  void randomResizesNeverServeWrongBytes(long seed) throws InterruptedException {
    SplittableRandom rnd = new SplittableRandom(seed);
    try (SampleCache c = cache(3 * SLAB, "belady")) {
      Map<Long, Handle> pins = new HashMap<>();
      Map<Long, Reservation> open = new HashMap<>();
      long budget = 3 * SLAB;
      for (int step = 0; step < 20_000; step++) {
        long id = rnd.nextLong(2000);
        int op = rnd.nextInt(100);
        if (op < 40) {
          int length = SAMPLE / 2 + rnd.nextInt(SAMPLE) & ~7;
          c.put(id, bytesOf(id, length));
        } else if (op < 60) {
          Handle h = pins.remove(id);
          if (h != null) {
            assertBytes(id, h.segment());
            h.close();
          } else if ((h = c.pin(id)) != null) {
            assertBytes(id, h.segment());
            pins.put(id, h);
          }
        } else if (op < 75) {
          Reservation r = open.remove(id);
          if (r != null) {
            MemorySegment.copy(bytesOf(id, SAMPLE), 0, r.segment(), 0, SAMPLE);
            if (rnd.nextBoolean()) {
              r.commit();
            }
            r.close();
          } else if ((r = c.reserve(id, SAMPLE)) != null) {
            open.put(id, r);
          }
        } else if (op < 77) {
          budget = (1 + rnd.nextInt(4)) * SLAB - rnd.nextInt(2) * SAMPLE;
          c.resize(budget);
        } else if (op < 79) {
          for (Handle h : pins.values()) {
            h.close();
          }
          pins.clear();
          for (Reservation r : open.values()) {
            r.close();
          }
          open.clear();
          assertTrue(c.awaitWithinBudget(0, TimeUnit.SECONDS), "nothing pinned: within budget");
          assertTrue(c.heldBytes() <= budget, c.heldBytes() + " held > budget " + budget);
        } else {
          Handle h = c.pin(id);
          if (h != null) {
            assertBytes(id, h.segment());
            h.close();
          }
        }
        if (step % 64 == 0) {
          c.checkInvariants();
        }
      }
      for (Handle h : pins.values()) {
        h.close();
      }
      for (Reservation r : open.values()) {
        r.close();
      }
      c.checkInvariants();
    }
  }
}
