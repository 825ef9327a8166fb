package io.sluice.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SampleCacheTest {
  private final Arena arena = Arena.ofConfined();

  @AfterEach
  void closeArena() {
    arena.close();
  }

  /** Every policy, fresh; Belady over a made-up plan in which sample i is next needed at i % 97. */
  static EvictionPolicy policy(String name) {
    return switch (name) {
      case "belady" ->
          new BeladyPolicy(
              (id, step) -> step + Math.floorMod(id - step, 97) + (id % 3 == 0 ? 1000 : 0));
      case "lru" -> new LruPolicy();
      case "caffeine" -> new CaffeinePolicy();
      default -> throw new IllegalArgumentException(name);
    };
  }

  private static SampleCache cache(long budget, String policy) {
    return SampleCache.builder().budgetBytes(budget).policy(policy(policy)).build();
  }

  /** Sample bytes that identify the sample and the offset. */
  private MemorySegment bytesOf(long sampleId, int length) {
    MemorySegment s = arena.allocate(Math.max(1, length)).asSlice(0, length);
    for (int i = 0; i < length; i++) {
      s.set(ValueLayout.JAVA_BYTE, i, expected(sampleId, i));
    }
    return s;
  }

  private static byte expected(long sampleId, long offset) {
    return (byte) (sampleId * 131 + offset * 7 + (offset >>> 8));
  }

  private static void assertBytes(long sampleId, int length, MemorySegment s) {
    assertEquals(length, s.byteSize(), "sampleId=" + sampleId + " length");
    for (int i = 0; i < length; i++) {
      if (s.get(ValueLayout.JAVA_BYTE, i) != expected(sampleId, i)) {
        fail("sampleId=" + sampleId + " offset=" + i + " differs");
      }
    }
  }

  @Test
  void aReadAheadNeverEvictsWhatIsNeededSooner() {
    // Sample i is next needed at step i: four 64-byte samples fill a 256-byte cache.
    try (SampleCache c =
        SampleCache.builder()
            .budgetBytes(256)
            .slabBytes(256)
            .policy(new BeladyPolicy((id, step) -> id >= step ? id : NextUse.NEVER))
            .build()) {
      for (long id = 10; id < 14; id++) {
        assertTrue(c.put(id, bytesOf(id, 64)));
      }
      // Needed at 20, later than everything cached: no room is made.
      assertEquals(null, c.reserveBefore(20, 64, 20));
      assertEquals(4, c.stats().entries());
      assertEquals(0, c.stats().evictions());
      // Needed at 12: sample 13 (needed at 13) goes, 10..12 stay.
      try (Reservation r = c.reserveBefore(5, 64, 12)) {
        assertTrue(r != null, "room for a sample needed before the farthest one");
        r.commit();
      }
      assertTrue(c.contains(12) && !c.contains(13), "the farthest was evicted");
      // The plain reserve still evicts as the policy says.
      try (Reservation r = c.reserve(20, 64)) {
        assertTrue(r != null);
      }
      c.checkInvariants();
    }
  }

  @Test
  void contentsReadBackByteIdentical() {
    try (SampleCache c = cache(1 << 20, "lru")) {
      int[] lengths = {0, 1, 7, 63, 64, 65, 4095, 4096, 4097, 100_000};
      for (int i = 0; i < lengths.length; i++) {
        assertTrue(c.put(i, bytesOf(i, lengths[i])));
      }
      // Straight into cache memory, as a read backend would.
      try (Reservation r = c.reserve(100, 3000)) {
        assertFalse(c.contains(100), "invisible until committed");
        assertNull(c.pin(100));
        MemorySegment.copy(bytesOf(100, 3000), 0, r.segment(), 0, 3000);
        r.commit();
      }
      for (int i = 0; i < lengths.length; i++) {
        try (Handle h = c.pin(i)) {
          assertBytes(i, lengths[i], h.segment());
          assertTrue(h.segment().isReadOnly());
          assertEquals(0, h.segment().address() % SampleCache.DEFAULT_ALIGNMENT_BYTES);
        }
      }
      try (Handle h = c.pin(100)) {
        assertBytes(100, 3000, h.segment());
      }
      c.checkInvariants();
    }
  }

  @Test
  void aFileBackedCacheKeepsItsBytesInAnUnlinkedFileWithinItsBudget(@TempDir Path folder)
      throws Exception {
    // The spill tier: slabs are pages of a file, evicted by the same plan as memory.
    try (SampleCache c =
        SampleCache.builder()
            .budgetBytes(64 << 10)
            .slabBytes(16 << 10)
            .policy(new BeladyPolicy((id, step) -> id >= step ? id : NextUse.NEVER))
            .backingFolder(folder)
            .build()) {
      try (var files = Files.list(folder)) {
        assertEquals(0, files.count(), "the file is unlinked at once: nothing left on a crash");
      }
      for (long id = 0; id < 40; id++) {
        c.put(id, bytesOf(id, 4000));
      }
      assertTrue(c.stats().usedBytes() <= 64 << 10, "within the budget");
      int held = 0;
      for (long id = 0; id < 40; id++) {
        try (Handle h = c.pin(id)) {
          if (h != null) {
            assertBytes(id, 4000, h.segment());
            held++;
          }
        }
      }
      assertTrue(held >= 12, "held=" + held);
      try (Handle soonest = c.pin(0)) {
        assertNotNull(soonest, "needed soonest: kept");
      }
      assertNull(c.pin(30), "needed later than what stayed: evicted, as in memory");
    }
    IOException e =
        assertThrows(
            IOException.class,
            () -> SampleCache.builder().backingFolder(folder.resolve("missing")));
    assertTrue(
        e.getMessage().contains("spill folder=" + folder.resolve("missing")), e.getMessage());
  }

  @Test
  void statsCountersAreExact() {
    // 8 slots of 64 bytes.
    try (SampleCache c = SampleCache.builder().budgetBytes(512).policy(new LruPolicy()).build()) {
      for (int i = 0; i < 8; i++) {
        assertTrue(c.put(i, bytesOf(i, 64)));
      }
      assertEquals(new CacheStats(0, 0, 0, 0, 8, 512, 0, 512, 512), c.stats());
      assertFalse(c.put(3, bytesOf(3, 64)), "already cached");
      Handle h0 = c.pin(0);
      Handle h1 = c.pin(1);
      Handle h1b = c.pin(1);
      assertNull(c.pin(42));
      assertEquals(new CacheStats(3, 1, 0, 0, 8, 512, 128, 512, 512), c.stats());
      // LRU order is 2..7 (0 and 1 are pinned): 100 evicts 2, 101 (two slots) evicts 3 and 4.
      assertTrue(c.put(100, bytesOf(100, 10)));
      assertTrue(c.put(101, bytesOf(101, 100)));
      assertFalse(c.contains(2));
      assertFalse(c.contains(3));
      assertFalse(c.contains(4));
      assertTrue(c.contains(5));
      assertEquals(new CacheStats(3, 1, 3, 0, 7, 512, 128, 512, 512), c.stats());
      assertFalse(c.put(102, bytesOf(102, 513)), "larger than the budget");
      assertEquals(new CacheStats(3, 1, 3, 1, 7, 512, 128, 512, 512), c.stats());
      h0.close();
      h1.close();
      assertEquals(64, c.stats().pinnedBytes(), "one pin left on sample 1");
      h1b.close();
      h1b.close(); // harmless
      assertEquals(new CacheStats(3, 1, 3, 1, 7, 512, 0, 512, 512), c.stats());
      assertEquals(3.0 / 4, c.stats().hitRate());
      c.checkInvariants();
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"belady", "lru", "caffeine"})
  void pinnedSamplesAreNeverEvictedAndAPutThatCannotFitIsRefused(String policy) {
    try (SampleCache c = cache(64 * 16, policy)) {
      List<Handle> handles = new ArrayList<>();
      for (int i = 0; i < 16; i++) {
        assertTrue(c.put(i, bytesOf(i, 64)));
        handles.add(c.pin(i));
      }
      assertFalse(c.put(99, bytesOf(99, 1)));
      assertNull(c.reserve(99, 1));
      CacheStats s = c.stats();
      assertEquals(0, s.evictions());
      assertEquals(2, s.rejections());
      assertEquals(64 * 16, s.pinnedBytes());
      for (int i = 0; i < 16; i++) {
        assertTrue(c.contains(i));
        assertBytes(i, 64, handles.get(i).segment());
      }
      handles.get(5).close();
      assertTrue(c.put(99, bytesOf(99, 1)), "the one unpinned sample makes room");
      assertFalse(c.contains(5));
      for (Handle h : handles) {
        h.close();
      }
      c.checkInvariants();
    }
  }

  /**
   * An entry that left the cache is reused for a later sample; the handles and reservations of its
   * old sample still answer for that sample, and closing them again changes nothing.
   */
  @ParameterizedTest
  @ValueSource(strings = {"belady", "lru", "caffeine"})
  void aReusedEntryIsOutOfReachOfItsOldSamplesHandlesAndReservations(String policy) {
    try (SampleCache c = cache(64, policy)) {
      assertTrue(c.put(1, bytesOf(1, 64)));
      Handle h1 = c.pin(1);
      h1.close();
      assertTrue(c.put(2, bytesOf(2, 64)), "sample 1 evicted for it");
      Handle h2 = c.pin(2);
      assertSame(h1.entry, h2.entry, "sample 2 took the entry sample 1 left");
      h1.close();
      assertEquals(1, h1.sampleId());
      assertFalse(
          c.put(3, bytesOf(3, 64)), "sample 2 is still pinned: the second close is a no-op");
      assertBytes(2, 64, h2.segment());
      h2.close();

      Reservation r = c.reserve(5, 64);
      SampleCache.Entry reserved = r.entry;
      r.close();
      assertTrue(c.put(6, bytesOf(6, 64)));
      try (Handle h6 = c.pin(6)) {
        assertSame(reserved, h6.entry, "sample 6 took the entry of the aborted reservation");
        r.close();
        assertEquals(
            "reservation sampleId=5 is already committed or closed",
            assertThrows(IllegalStateException.class, r::commit).getMessage());
        assertEquals(5, r.sampleId());
        assertBytes(6, 64, h6.segment());
        assertTrue(c.contains(6));
      }
      c.checkInvariants();
    }
  }

  @Test
  void aRefusedPutEvictsNothing() {
    // Four 64-byte slots; pinning slots 1 and 3 leaves no 128-byte hole even if 0 and 2 go.
    try (SampleCache c = cache(256, "lru")) {
      for (int i = 0; i < 4; i++) {
        assertTrue(c.put(i, bytesOf(i, 64)));
      }
      try (Handle h1 = c.pin(1);
          Handle h3 = c.pin(3)) {
        assertFalse(c.put(9, bytesOf(9, 128)));
        assertTrue(c.contains(0) && c.contains(2), "nothing evicted for a refused put");
        assertEquals(0, c.stats().evictions());
        assertTrue(c.put(9, bytesOf(9, 64)), "a 64-byte sample fits after one eviction");
        assertEquals(1, c.stats().evictions());
        assertBytes(1, 64, h1.segment());
        assertBytes(3, 64, h3.segment());
      }
      c.checkInvariants();
    }
  }

  @Test
  void fragmentedSlabsEvictUntilAHoleFits() {
    // LRU order 0..3; a 128-byte sample needs two adjacent slots: evicting 0 then 1 coalesces.
    try (SampleCache c = cache(256, "lru")) {
      for (int i = 0; i < 4; i++) {
        assertTrue(c.put(i, bytesOf(i, 64)));
      }
      assertTrue(c.put(9, bytesOf(9, 128)));
      assertEquals(2, c.stats().evictions());
      assertFalse(c.contains(0) || c.contains(1));
      try (Handle h = c.pin(9)) {
        assertBytes(9, 128, h.segment());
      }
      c.checkInvariants();
    }
  }

  @Test
  void slabsAreTakenOnDemandAndNeverBeyondTheBudget() {
    try (SampleCache c =
        SampleCache.builder().budgetBytes(10_000).slabBytes(4096).policy(new LruPolicy()).build()) {
      assertEquals(0, c.stats().slabBytes());
      assertTrue(c.put(0, bytesOf(0, 100)));
      assertEquals(4096, c.stats().slabBytes());
      assertFalse(c.put(1, bytesOf(1, 4097)), "larger than a slab");
      for (int i = 2; i < 200; i++) {
        assertTrue(c.put(i, bytesOf(i, 1000)));
        assertTrue(c.stats().slabBytes() <= 10_000);
        c.checkInvariants();
      }
      // Two full slabs and a last one of what the budget leaves, rounded down to the alignment.
      assertEquals(4096 + 4096 + 1792, c.stats().slabBytes());
    }
    try (SampleCache c =
        SampleCache.builder()
            .budgetBytes(1 << 16)
            .slabBytes(4096)
            .preallocate(true)
            .policy(new LruPolicy())
            .build()) {
      assertEquals(1 << 16, c.stats().slabBytes());
    }
  }

  @Test
  void closeFreesAllMemoryAndReportsLeaks() {
    SampleCache c = cache(1 << 16, "belady");
    assertTrue(c.put(1, bytesOf(1, 100)));
    MemorySegment view;
    try (Handle h = c.pin(1)) {
      view = h.segment();
    }
    assertTrue(view.scope().isAlive());
    c.close();
    assertFalse(view.scope().isAlive(), "the arena is closed");
    assertThrows(IllegalStateException.class, () -> view.get(ValueLayout.JAVA_BYTE, 0));
    assertEquals(0, c.stats().usedBytes());
    c.close(); // idempotent
    assertThrows(IllegalStateException.class, () -> c.pin(1));
    assertThrows(IllegalStateException.class, () -> c.put(2, bytesOf(2, 1)));

    SampleCache leaky = cache(1 << 16, "lru");
    assertTrue(leaky.put(1, bytesOf(1, 100)));
    Handle open = leaky.pin(1);
    Reservation pending = leaky.reserve(2, 10);
    IllegalStateException e = assertThrows(IllegalStateException.class, leaky::close);
    assertEquals(
        "sample cache closed with openHandles=1 openReservations=1;"
            + " their segments are no longer accessible",
        e.getMessage());
    assertFalse(open.segment().scope().isAlive(), "freed even so");
    open.close(); // harmless after close
    pending.close();
    assertThrows(IllegalStateException.class, pending::commit);
  }

  @Test
  void reservationsAbortCommitOnceAndBlockTheirId() {
    try (SampleCache c = cache(1024, "lru")) {
      Reservation r = c.reserve(7, 100);
      assertNotNull(r);
      assertNull(c.reserve(7, 100), "being loaded");
      assertFalse(c.put(7, bytesOf(7, 100)));
      assertEquals(128, c.stats().usedBytes());
      r.close();
      assertEquals(0, c.stats().usedBytes(), "abort gives the memory back");
      assertFalse(c.contains(7));
      try (Reservation again = c.reserve(7, 100)) {
        again.commit();
        IllegalStateException e = assertThrows(IllegalStateException.class, again::commit);
        assertEquals("reservation sampleId=7 is already committed or closed", e.getMessage());
      }
      assertTrue(c.contains(7), "close after commit keeps the sample");
      c.checkInvariants();
    }
  }

  @Test
  void builderRejectsBadValuesNamingThem() {
    assertMessage("budgetBytes=0 must be >= 1", () -> SampleCache.builder().budgetBytes(0));
    assertMessage(
        "alignmentBytes=48 must be a power of two in [8, 4096]",
        () -> SampleCache.builder().alignmentBytes(48));
    assertMessage("policy=null must be non-null", () -> SampleCache.builder().policy(null));
    assertMessage(
        "slabBytes=0 must be in [1, " + ((1L << 40) - 4096) + "]",
        () -> SampleCache.builder().slabBytes(0));
    assertMessage("policy is required", () -> SampleCache.builder().budgetBytes(100).build());
    assertMessage(
        "budgetBytes=10 must be >= alignmentBytes=64",
        () -> SampleCache.builder().budgetBytes(10).policy(new LruPolicy()).build());
    assertMessage(
        "sampleId=-1 must be >= 0",
        () -> {
          try (SampleCache c = cache(1024, "lru")) {
            c.reserve(-1, 1);
          }
        });
    LruPolicy shared = new LruPolicy();
    try (SampleCache first = SampleCache.builder().budgetBytes(1024).policy(shared).build()) {
      assertTrue(first.put(1, bytesOf(1, 10)));
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> SampleCache.builder().budgetBytes(1024).policy(shared).build());
      assertEquals("policy=lru is already attached to a cache", e.getMessage());
    }
  }

  private static void assertMessage(String message, Runnable r) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
    assertEquals(message, e.getMessage());
  }

  /**
   * Random puts (some larger than a slab), reservations, pins, releases and step advances: after
   * every operation the budget holds, the allocator and counters agree, every pinned sample is
   * cached with its bytes intact, and the hit/miss counters match the pins made.
   */
  @ParameterizedTest
  @ValueSource(strings = {"belady", "lru", "caffeine"})
  void randomOperationsKeepEveryInvariant(String policy) {
    for (int seed = 0; seed < 25; seed++) {
      SplittableRandom random = new SplittableRandom(seed);
      long budget = 64L * (16 + random.nextInt(200));
      long slab = random.nextBoolean() ? budget : 64L * (8 + random.nextInt(64));
      List<Handle> handles = new ArrayList<>();
      List<Reservation> reservations = new ArrayList<>();
      long pins = 0;
      long found = 0;
      try (SampleCache c =
          SampleCache.builder()
              .budgetBytes(budget)
              .slabBytes(slab)
              .policy(policy(policy))
              .build()) {
        for (int op = 0; op < 600; op++) {
          long id = random.nextInt(60);
          int length = lengthOf(id, seed);
          switch (random.nextInt(10)) {
            case 0, 1, 2 -> c.put(id, bytesOf(id, length));
            case 3 -> {
              Reservation r = c.reserve(id, length);
              if (r != null) {
                MemorySegment.copy(bytesOf(id, length), 0, r.segment(), 0, length);
                reservations.add(r);
              }
            }
            case 4 -> {
              if (!reservations.isEmpty()) {
                Reservation r = reservations.remove(random.nextInt(reservations.size()));
                if (random.nextInt(4) == 0) {
                  r.close();
                } else {
                  r.commit();
                }
              }
            }
            case 5, 6 -> {
              pins++;
              Handle h = c.pin(id);
              if (h != null) {
                found++;
                handles.add(h);
              }
            }
            case 7, 8 -> {
              if (!handles.isEmpty()) {
                handles.remove(random.nextInt(handles.size())).close();
              }
            }
            default -> c.advanceTo(c.currentStep() + random.nextInt(3));
          }
          c.checkInvariants();
          CacheStats s = c.stats();
          assertTrue(s.usedBytes() <= budget && s.slabBytes() <= budget, s::toString);
          assertEquals(found, s.hits());
          assertEquals(pins - found, s.misses());
          for (Handle h : handles) {
            assertTrue(c.contains(h.sampleId()), "pinned sampleId=" + h.sampleId() + " evicted");
            assertBytes(h.sampleId(), lengthOf(h.sampleId(), seed), h.segment());
          }
        }
        handles.forEach(Handle::close);
        reservations.forEach(Reservation::close);
        assertEquals(0, c.stats().pinnedBytes());
        c.checkInvariants();
      }
    }
  }

  private static int lengthOf(long id, int seed) {
    return (int) ((id * 7919 + seed * 31) % 700); // some longer than the smallest slabs
  }

  /**
   * Four threads put, reserve, pin and verify overlapping samples at once; afterwards the counters
   * add up and nothing is pinned. Run for every policy.
   */
  @ParameterizedTest
  @ValueSource(strings = {"belady", "lru", "caffeine"})
  @Timeout(value = 20, unit = TimeUnit.SECONDS)
  void concurrentPutAndPinStayConsistent(String policy) throws Exception {
    int threads = 4;
    int opsPerThread = 5_000;
    try (SampleCache c = cache(64 * 150, policy);
        ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      CountDownLatch start = new CountDownLatch(1);
      List<Future<long[]>> results = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int seed = t;
        Supplier<long[]> work =
            () -> {
              SplittableRandom random = new SplittableRandom(seed);
              long pins = 0;
              long hits = 0;
              try (Arena local = Arena.ofConfined()) {
                MemorySegment src = local.allocate(700);
                for (int op = 0; op < opsPerThread; op++) {
                  long id = random.nextInt(400);
                  int length = lengthOf(id, 0);
                  if (random.nextBoolean()) {
                    pins++;
                    try (Handle h = c.pin(id)) {
                      if (h != null) {
                        hits++;
                        assertBytes(id, length, h.segment());
                      }
                    }
                  } else {
                    MemorySegment bytes = src.asSlice(0, length);
                    for (int i = 0; i < length; i++) {
                      bytes.set(ValueLayout.JAVA_BYTE, i, expected(id, i));
                    }
                    if (random.nextBoolean()) {
                      c.put(id, bytes);
                    } else {
                      try (Reservation r = c.reserve(id, length)) {
                        if (r != null) {
                          MemorySegment.copy(bytes, 0, r.segment(), 0, length);
                          r.commit();
                        }
                      }
                    }
                  }
                  if (op % 250 == 0) {
                    c.advanceTo(op / 250);
                  }
                }
              }
              return new long[] {pins, hits};
            };
        results.add(
            pool.submit(
                () -> {
                  start.await();
                  return work.get();
                }));
      }
      start.countDown();
      long pins = 0;
      long hits = 0;
      for (Future<long[]> f : results) {
        long[] r = f.get();
        pins += r[0];
        hits += r[1];
      }
      CacheStats s = c.stats();
      assertEquals(hits, s.hits());
      assertEquals(pins - hits, s.misses());
      assertEquals(0, s.pinnedBytes());
      assertTrue(s.usedBytes() <= s.budgetBytes());
      assertTrue(s.evictions() > 0, "the workload overflows the cache");
      c.checkInvariants();
    }
  }
}
