package io.sluice.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SlabAllocatorTest {
  private static final int SLOTS = 2048;

  @Test
  void aFreedExtentOfTheLengthLastAskedForIsHandedOutAgainFirst() {
    try (Arena arena = Arena.ofConfined()) {
      SlabAllocator a = new SlabAllocator(arena, SLOTS * 64, SLOTS * 64);
      long first = a.allocate(64);
      long second = a.allocate(64);
      a.free(first, 64);
      assertEquals(first, a.allocate(64), "from the quick list, not the best fit after second");
      a.free(second, 64);
      a.free(first, 64);
      a.checkInvariants(0);
    }
  }

  /**
   * More frees than the quick list holds (the rest go to the trees), then one allocation of the
   * whole slab: it must flush the quick list and coalesce everything back into one extent.
   */
  @Test
  void quickExtentsBeyondTheCapAndBackInTheTreesCoalesceIntoTheWholeSlab() {
    try (Arena arena = Arena.ofConfined()) {
      SlabAllocator a = new SlabAllocator(arena, SLOTS * 64, SLOTS * 64);
      List<Long> extents = new ArrayList<>();
      for (int i = 0; i < SLOTS; i++) {
        extents.add(a.allocate(64));
      }
      a.checkInvariants(SLOTS * 64);
      for (int i = 0; i < SLOTS; i += 2) { // every other one first: nothing coalesces in the trees
        a.free(extents.get(i), 64);
      }
      for (int i = 1; i < SLOTS; i += 2) {
        a.free(extents.get(i), 64);
      }
      a.checkInvariants(0);
      assertEquals(0, a.allocate(SLOTS * 64), "the whole slab, from its start");
      a.checkInvariants(SLOTS * 64);
      a.free(0, SLOTS * 64);
      a.checkInvariants(0);
    }
  }

  /** Two lengths asked for in turn: the quick list follows whichever was asked for last. */
  @Test
  void interleavedLengthsNeverLoseBytes() {
    try (Arena arena = Arena.ofConfined()) {
      SlabAllocator a = new SlabAllocator(arena, SLOTS * 64, SLOTS * 64);
      List<long[]> extents = new ArrayList<>();
      long used = 0;
      while (true) {
        long length = extents.size() % 2 == 0 ? 64 : 128;
        long address = a.allocate(length);
        if (address < 0) {
          break;
        }
        extents.add(new long[] {address, length});
        used += length;
      }
      a.checkInvariants(used);
      for (int round = 0; round < 3; round++) {
        for (int i = round % 2; i < extents.size(); i += 2) {
          long[] e = extents.get(i);
          a.free(e[0], e[1]);
          used -= e[1];
          a.checkInvariants(used);
          long again = a.allocate(e[1] == 64 ? 128 : 64); // asks for the other length
          if (again >= 0) {
            a.free(again, e[1] == 64 ? 128 : 64);
          }
          a.checkInvariants(used);
        }
        for (int i = round % 2; i < extents.size(); i += 2) {
          long[] e = extents.get(i);
          e[0] = a.allocate(e[1]);
          used += e[1];
          a.checkInvariants(used);
        }
      }
      for (long[] e : extents) {
        a.free(e[0], e[1]);
      }
      a.checkInvariants(0);
      assertEquals(0, a.allocate(SLOTS * 64), "everything coalesced again");
    }
  }
}
