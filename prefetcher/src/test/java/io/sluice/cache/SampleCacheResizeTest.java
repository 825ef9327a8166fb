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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link SampleCache#resize}: growing, draining slabs down to a smaller budget, and growing back.
 */
class SampleCacheResizeTest {
  private static final int SAMPLE = 4096;
  private static final long SLAB = 4L << 20; // 1024 samples a slab, two huge pages
  private static final int PER_SLAB = (int) (SLAB / SAMPLE);
  private final Arena arena = Arena.ofConfined();

  /** Shrinking needs memory that can go back to the OS: the huge-page slabs. */
  private static void needsReleasableMemory() {
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

  private static void assertCachedBytes(SampleCache c, long to) {
    for (long id : cachedIds(c, to)) {
      try (Handle h = c.pin(id)) {
        assertBytes(id, h.segment());
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"belady", "lru", "caffeine"})
  void shrinkingDrainsWholeSlabsAndKeepsTheRestIntact(String policy) {
    needsReleasableMemory();
    try (SampleCache c = cache(4 * SLAB, policy)) {
      fill(c, 0, 4 * PER_SLAB);
      assertEquals(4 * SLAB, c.heldBytes());
      c.resize(2 * SLAB);
      assertTrue(c.drained(), "nothing pinned: drained at once");
      assertEquals(2 * SLAB, c.heldBytes());
      assertEquals(2 * SLAB, c.stats().budgetBytes());
      assertEquals(2 * PER_SLAB, cachedIds(c, 4 * PER_SLAB).size(), "two slabs' samples left");
      assertCachedBytes(c, 4 * PER_SLAB);
      c.checkInvariants();
      // A full cache at its new budget evicts through its policy as before.
      fill(c, 10_000, 10_100);
      assertEquals(2 * SLAB, c.heldBytes());
      c.checkInvariants();
    }
  }

  @Test
  void aSlabWithNothingPinnedGoesFirst() {
    needsReleasableMemory();
    try (SampleCache c = cache(2 * SLAB, "lru")) {
      fill(c, 0, 2 * PER_SLAB);
      try (Handle h = c.pin(0)) { // the first slab has a reader
        c.resize(SLAB);
        assertTrue(c.drained(), "the other slab went at once");
        assertEquals(SLAB, c.heldBytes());
        assertTrue(c.contains(0));
        assertFalse(c.contains(PER_SLAB), "the second slab's samples went with it");
        assertBytes(0, h.segment());
      }
      c.checkInvariants();
    }
  }

  @Test
  void pinnedSamplesKeepTheirPagesUntilReleasedAndTheBudgetHoldsMeanwhile() {
    needsReleasableMemory();
    try (SampleCache c = cache(3 * SLAB, "lru")) {
      fill(c, 0, 3 * PER_SLAB);
      List<Handle> pins = new ArrayList<>();
      for (int s = 0; s < 3; s++) {
        pins.add(c.pin((long) s * PER_SLAB + 5)); // one reader in every slab
      }
      c.resize(2 * SLAB);
      // One drained slab keeps the huge page its pinned sample lies in (2 MiB): over the budget,
      // so a second slab drains too, and what is held is within the budget at once.
      assertEquals(2 * HugePageMemory.HUGE_PAGE_BYTES + SLAB, c.heldBytes());
      assertTrue(c.heldBytes() <= 2 * SLAB, "held " + c.heldBytes());
      assertEquals(PER_SLAB + 2, c.stats().entries(), "one slab whole, two pinned samples");
      assertFalse(c.drained(), "a pinned slab cannot go yet");
      for (int s = 0; s < 3; s++) {
        assertBytes((long) s * PER_SLAB + 5, pins.get(s).segment());
      }
      c.checkInvariants();
      for (Handle h : pins) {
        h.close();
      }
      assertTrue(c.drained());
      assertEquals(SLAB, c.heldBytes());
      fill(c, 10_000, 10_000 + PER_SLAB + 10); // takes a slab again, then evicts
      assertEquals(2 * SLAB, c.heldBytes());
      assertCachedBytes(c, 20_000);
      c.checkInvariants();
    }
  }

  @Test
  void aReservationCommittedIntoADrainingSlabIsDropped() {
    needsReleasableMemory();
    try (SampleCache c = cache(2 * SLAB, "belady")) {
      fill(c, 0, PER_SLAB + 100);
      Reservation r = c.reserve(77_777, SAMPLE); // in the second slab, the emptier one
      assertNotNull(r);
      Handle reader = c.pin(3); // the first slab has something in use too
      c.resize(SLAB);
      // The second slab drains first; its page kept for the reservation leaves the cache over
      // the budget, so the first drains too, keeping the reader's page.
      assertEquals(2 * HugePageMemory.HUGE_PAGE_BYTES, c.heldBytes());
      reader.close();
      MemorySegment.copy(bytesOf(77_777, SAMPLE), 0, r.segment(), 0, SAMPLE);
      r.commit();
      r.close();
      assertNull(c.pin(77_777), "its slab is going back: a miss, read again by whoever asks");
      assertTrue(c.drained());
      assertEquals(0, c.heldBytes());
      c.checkInvariants();
      assertTrue(c.put(77_777, bytesOf(77_777, SAMPLE)), "a slab taken again");
      assertEquals(SLAB, c.heldBytes());
      try (Handle h = c.pin(77_777)) {
        assertBytes(77_777, h.segment());
      }
    }
  }

  @Test
  void growingAgainTakesTheReturnedSlabsFirst() {
    needsReleasableMemory();
    try (SampleCache c = cache(4 * SLAB, "lru")) {
      fill(c, 0, 4 * PER_SLAB);
      assertEquals(4, c.slabCount());
      c.resize(SLAB);
      assertTrue(c.drained());
      assertEquals(SLAB, c.heldBytes());
      c.resize(4 * SLAB);
      fill(c, 10_000, 10_000 + 3 * PER_SLAB);
      assertEquals(4 * SLAB, c.heldBytes());
      assertEquals(4, c.slabCount(), "no new mapping: the returned slabs were taken again");
      assertEquals(4 * PER_SLAB, cachedIds(c, 20_000).size());
      assertCachedBytes(c, 20_000);
      c.checkInvariants();
    }
  }

  @Test
  void aGrowthPopulatedFirstTakesNoSampleUntilItsMemoryIsBacked() {
    needsReleasableMemory();
    try (SampleCache c = cache(SLAB, "lru")) {
      fill(c, 0, PER_SLAB);
      Runnable populate = c.growPopulated(3 * SLAB);
      assertEquals(3 * SLAB, c.heldBytes(), "both slabs taken at once");
      assertEquals(3 * SLAB, c.stats().budgetBytes());
      fill(c, 10_000, 10_010);
      assertEquals(PER_SLAB, c.stats().entries(), "nothing placed in them yet: the cache evicted");
      c.checkInvariants();
      populate.run();
      fill(c, 20_000, 20_000 + 2 * PER_SLAB);
      assertEquals(3 * PER_SLAB, c.stats().entries(), "now they hold samples");
      assertCachedBytes(c, 30_000);
      c.checkInvariants();
      // Shrunk before its task ran, a growth gives the memory back once populated.
      Runnable late = c.growPopulated(4 * SLAB);
      c.resize(2 * SLAB);
      late.run();
      assertTrue(c.drained());
      assertEquals(2 * SLAB, c.heldBytes());
      assertCachedBytes(c, 30_000);
      c.checkInvariants();
      assertThrows(IllegalArgumentException.class, () -> c.growPopulated(SLAB));
    }
  }

  @Test
  void closingWhileDrainingFreesEverythingAndBadBudgetsAreRefused() {
    needsReleasableMemory();
    SampleCache c = cache(2 * SLAB, "lru");
    fill(c, 0, 2 * PER_SLAB);
    Handle a = c.pin(3);
    Handle b = c.pin(PER_SLAB + 3);
    c.resize(SLAB / 2); // both slabs drain; the pins keep them
    IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> c.resize(8));
    assertTrue(bad.getMessage().contains("budgetBytes=8"), bad.getMessage());
    assertFalse(c.drained(), "still draining while pinned");
    assertThrows(IllegalStateException.class, c::close, "closed with two handles open");
    assertTrue(c.drained(), "nothing left to drain once closed");
    assertEquals(0, c.heldBytes());
    a.close();
    b.close();
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
      fill(c, 0, 2 * PER_SLAB);
      assertEquals(2 * SLAB, c.heldBytes());
      UnsupportedOperationException e =
          assertThrows(UnsupportedOperationException.class, () -> c.resize(SLAB));
      assertTrue(e.getMessage().contains("cannot shrink"), e.getMessage());
      assertEquals(2 * PER_SLAB, cachedIds(c, 2 * PER_SLAB).size());
    }
  }

  /**
   * Random puts, pins, reservations and resizes: every sample read back has its own bytes, the
   * cache's books balance after every step, and the memory held settles within each budget once
   * nothing is pinned.
   */
  @ParameterizedTest
  @ValueSource(longs = {1, 2, 3})
  void randomResizesNeverServeWrongBytes(long seed) {
    needsReleasableMemory();
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
          assertTrue(c.drained(), "nothing pinned: within budget");
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
