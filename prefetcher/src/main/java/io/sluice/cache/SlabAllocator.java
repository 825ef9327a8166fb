package io.sluice.cache;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Best-fit allocation of aligned extents from off-heap slabs taken lazily from one arena, never
 * more than the budget in all. Free extents in the trees coalesce with their neighbours. Owned by
 * {@link SampleCache} and called under its lock.
 *
 * <p>A full cache frees a victim's extent and at once allocates one for the sample replacing it,
 * mostly of the same length (datasets of fixed-length samples). A freed extent of the length last
 * asked for therefore first goes to a quick list, as malloc's fast bins do, where the next
 * allocation of that length takes it without touching the trees (each tree update allocates and
 * walks nodes that miss the CPU's caches: a quarter of the cache's work on a miss). Other lengths
 * go to the trees at once, so datasets of varied lengths pay nothing for the list. Quick extents do
 * not coalesce; there are at most {@link #QUICK_MAX} of them, and an allocation the trees cannot
 * serve returns them to the trees first, so no allocation fails that coalescing would have served.
 *
 * <p>An extent is named by an address: {@code slabIndex << SLAB_SHIFT | offsetInSlab}. A slab is
 * shorter than {@code 1 << SLAB_SHIFT}, so extents of different slabs are never adjacent in address
 * space and never coalesce.
 */
final class SlabAllocator {
  static final int SLAB_SHIFT = 40;
  static final long MAX_SLAB_BYTES = (1L << SLAB_SHIFT) - 4096;
  private static final long OFFSET_MASK = (1L << SLAB_SHIFT) - 1;
  private static final int SLAB_ALIGNMENT = 4096;
  static final int QUICK_MAX = 1024;

  private record Extent(long lengthBytes, long address) implements Comparable<Extent> {
    @Override
    public int compareTo(Extent o) {
      int c = Long.compare(lengthBytes, o.lengthBytes);
      return c != 0 ? c : Long.compare(address, o.address);
    }
  }

  /** Where slabs come from: anonymous memory, or the pages of a file (a spill tier on NVMe). */
  @FunctionalInterface
  interface SlabSource {
    /** A 4096-aligned segment of {@code lengthBytes}; the slabs before it hold {@code offset}. */
    MemorySegment take(long offset, long lengthBytes);
  }

  private final SlabSource source;
  private final long budgetBytes;
  private final long slabBytes;
  private final List<MemorySegment> slabs = new ArrayList<>();
  private final List<MemorySegment> readOnlySlabs = new ArrayList<>(); // slabs.get(i).asReadOnly()
  private final TreeMap<Long, Long> freeByAddress = new TreeMap<>();
  private final TreeSet<Extent> freeBySize = new TreeSet<>();
  private long slabBytesTaken;
  private long freeBytes; // in the trees
  // Freed extents of quickLength not in the trees: a stack of addresses. quickLength follows the
  // allocations asked for, changing only while the stack is empty.
  private long quickLength = -1;
  private long[] quickAddresses = new long[16];
  private int quickCount;

  /**
   * {@code budgetBytes} and {@code slabBytes} are multiples of the alignment (the cache checks).
   */
  SlabAllocator(Arena arena, long budgetBytes, long slabBytes) {
    this((offset, length) -> arena.allocate(length, SLAB_ALIGNMENT), budgetBytes, slabBytes);
  }

  SlabAllocator(SlabSource source, long budgetBytes, long slabBytes) {
    this.source = source;
    this.budgetBytes = budgetBytes;
    this.slabBytes = slabBytes;
  }

  long slabBytesTaken() {
    return slabBytesTaken;
  }

  /** Takes every slab the budget allows now instead of on demand. */
  void takeAllSlabs() {
    while (nextSlabBytes() > 0) {
      takeSlab();
    }
  }

  /**
   * An extent of exactly {@code lengthBytes} (a multiple of the alignment), or -1 when no free
   * extent is long enough and the budget allows no new slab that would be.
   */
  long allocate(long lengthBytes) {
    if (lengthBytes == quickLength) {
      if (quickCount > 0) {
        return quickAddresses[--quickCount];
      }
    } else if (quickCount == 0) {
      quickLength = lengthBytes;
    }
    // A full cache asks before every eviction: with too few free bytes in all, skip the walk.
    Extent e = freeBytes < lengthBytes ? null : freeBySize.ceiling(new Extent(lengthBytes, -1));
    if (e == null && quickCount > 0) {
      flushQuick();
      e = freeBySize.ceiling(new Extent(lengthBytes, -1));
    }
    if (e == null) {
      if (nextSlabBytes() < lengthBytes) {
        return -1;
      }
      takeSlab();
      e = freeBySize.ceiling(new Extent(lengthBytes, -1));
    }
    removeFree(e.address, e.lengthBytes);
    if (e.lengthBytes > lengthBytes) {
      addFree(e.address + lengthBytes, e.lengthBytes - lengthBytes);
    }
    return e.address;
  }

  /**
   * Returns an extent {@link #allocate} handed out: to the quick list when it has the length last
   * asked for, else merged into the trees.
   */
  void free(long address, long lengthBytes) {
    if (lengthBytes != quickLength || quickCount == QUICK_MAX) {
      coalesce(address, lengthBytes);
      return;
    }
    if (quickCount == quickAddresses.length) {
      quickAddresses = Arrays.copyOf(quickAddresses, quickCount * 2);
    }
    quickAddresses[quickCount++] = address;
  }

  /** Returns every quick extent to the trees, merging neighbours. */
  private void flushQuick() {
    for (int i = 0; i < quickCount; i++) {
      coalesce(quickAddresses[i], quickLength);
    }
    quickCount = 0;
  }

  private void coalesce(long address, long lengthBytes) {
    long start = address;
    long length = lengthBytes;
    Map.Entry<Long, Long> before = freeByAddress.floorEntry(address);
    if (before != null && before.getKey() + before.getValue() == address) {
      removeFree(before.getKey(), before.getValue());
      start = before.getKey();
      length += before.getValue();
    }
    Long afterLength = freeByAddress.get(address + lengthBytes);
    if (afterLength != null) {
      removeFree(address + lengthBytes, afterLength);
      length += afterLength;
    }
    addFree(start, length);
  }

  /** The memory of an extent, {@code lengthBytes} long (at most its allocated length). */
  MemorySegment segment(long address, long lengthBytes) {
    return slabs.get((int) (address >>> SLAB_SHIFT)).asSlice(address & OFFSET_MASK, lengthBytes);
  }

  /** {@link #segment} read-only, in one slice (a pin per sample delivered takes one). */
  MemorySegment readOnlySegment(long address, long lengthBytes) {
    return readOnlySlabs
        .get((int) (address >>> SLAB_SHIFT))
        .asSlice(address & OFFSET_MASK, lengthBytes);
  }

  /**
   * Whether {@code lengthBytes} could be allocated once every allocated extent except {@code stuck}
   * ({address, length} pairs sorted by address: pinned samples and open reservations) were freed:
   * the longest gap between stuck extents of one slab, or a slab not taken yet, is at least that
   * long.
   */
  boolean couldFitWithout(long[][] stuck, long lengthBytes) {
    if (nextSlabBytes() >= lengthBytes) {
      return true;
    }
    int k = 0;
    for (int s = 0; s < slabs.size(); s++) {
      long base = (long) s << SLAB_SHIFT;
      long end = base + slabs.get(s).byteSize();
      long gapStart = base;
      while (k < stuck.length && stuck[k][0] < base) {
        k++;
      }
      for (; k < stuck.length && stuck[k][0] < end; k++) {
        if (stuck[k][0] - gapStart >= lengthBytes) {
          return true;
        }
        gapStart = stuck[k][0] + stuck[k][1];
      }
      if (end - gapStart >= lengthBytes) {
        return true;
      }
    }
    return false;
  }

  /**
   * Checks the free lists against each other and against {@code allocatedBytes} (what the cache
   * believes is allocated); throws {@link AssertionError} naming the first inconsistency. For
   * tests.
   */
  void checkInvariants(long allocatedBytes) {
    if (freeByAddress.size() != freeBySize.size()) {
      throw new AssertionError(
          "freeByAddress.size="
              + freeByAddress.size()
              + " != freeBySize.size="
              + freeBySize.size());
    }
    long sum = 0;
    long previousEnd = -1;
    for (Map.Entry<Long, Long> e : freeByAddress.entrySet()) {
      long address = e.getKey();
      long length = e.getValue();
      if (!freeBySize.contains(new Extent(length, address))) {
        throw new AssertionError("free extent address=" + address + " missing from freeBySize");
      }
      if (address <= previousEnd) {
        throw new AssertionError(
            "free extent address=" + address + " overlaps or touches one ending at " + previousEnd);
      }
      int slab = (int) (address >>> SLAB_SHIFT);
      if (slab >= slabs.size()
          || (address & OFFSET_MASK) + length > slabs.get(slab).byteSize()
          || length <= 0) {
        throw new AssertionError("free extent address=" + address + " length=" + length);
      }
      previousEnd = address + length;
      sum += length;
    }
    long quickBytes = quickCount * quickLength;
    long[] quick = Arrays.copyOf(quickAddresses, quickCount);
    Arrays.sort(quick);
    for (int i = 0; i < quick.length; i++) {
      long address = quick[i];
      Map.Entry<Long, Long> before = freeByAddress.floorEntry(address);
      Long after = freeByAddress.ceilingKey(address);
      int slab = (int) (address >>> SLAB_SHIFT);
      if ((before != null && before.getKey() + before.getValue() > address)
          || (after != null && after < address + quickLength)
          || (i > 0 && quick[i - 1] + quickLength > address)
          || slab >= slabs.size()
          || (address & OFFSET_MASK) + quickLength > slabs.get(slab).byteSize()) {
        throw new AssertionError(
            "quick extent address="
                + address
                + " length="
                + quickLength
                + " overlaps another free extent or leaves its slab");
      }
    }
    if (sum != freeBytes || freeBytes + quickBytes + allocatedBytes != slabBytesTaken) {
      throw new AssertionError(
          "free="
              + sum
              + " (counted "
              + freeBytes
              + ") + quick="
              + quickBytes
              + " + allocated="
              + allocatedBytes
              + " != slabBytes="
              + slabBytesTaken);
    }
    if (slabBytesTaken > budgetBytes) {
      throw new AssertionError("slabBytes=" + slabBytesTaken + " > budgetBytes=" + budgetBytes);
    }
  }

  private long nextSlabBytes() {
    return Math.min(slabBytes, budgetBytes - slabBytesTaken);
  }

  private void takeSlab() {
    long length = nextSlabBytes();
    MemorySegment slab = source.take(slabBytesTaken, length);
    long address = (long) slabs.size() << SLAB_SHIFT;
    slabs.add(slab);
    readOnlySlabs.add(slab.asReadOnly());
    slabBytesTaken += length;
    addFree(address, length);
  }

  private void addFree(long address, long length) {
    freeByAddress.put(address, length);
    freeBySize.add(new Extent(length, address));
    freeBytes += length;
  }

  private void removeFree(long address, long length) {
    freeByAddress.remove(address);
    freeBySize.remove(new Extent(length, address));
    freeBytes -= length;
  }
}
