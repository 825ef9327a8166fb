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
 *
 * <p>The budget may shrink ({@link #setBudget}). The cache then {@link #drain drains} slabs: a
 * draining slab's free extents leave the lists, so nothing new is placed in it, and its extents, as
 * they are freed, are only counted down; once the last is freed the slab's pages go back to the OS
 * ({@link SlabSource#release}) and the slab is returned. A returned slab keeps its index and its
 * (now unbacked) address range, and is the first taken again when the budget grows.
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

    /** Whether {@link #release} gives memory back; when not, the cache cannot shrink. */
    default boolean releases() {
      return false;
    }

    /**
     * The unit in which {@link #release} frees memory: a page partly released stays charged (a
     * transparent huge page is split and freed only later, under memory pressure), so a range is
     * released and counted in whole units.
     */
    default long pageBytes() {
      return 4096;
    }

    /**
     * Gives the pages of {@code range}, page-aligned and inside a slab {@link #take} returned, back
     * to the OS, keeping the address range: touched again, it reads zeros. Only called when {@link
     * #releases()}.
     */
    default void release(MemorySegment range) {
      throw new UnsupportedOperationException("this slab source cannot release memory");
    }

    /** Backs {@code slab}'s pages now, off the paths that will write them; may do nothing. */
    default void populate(MemorySegment slab) {}
  }

  private static final byte TAKEN = 0;
  private static final byte DRAINING = 1;
  private static final byte RETURNED = 2;
  private static final byte PREPARING = 3; // taken, being populated: not allocated from yet

  private final SlabSource source;
  private long budgetBytes;
  private final long slabBytes;
  private final List<MemorySegment> slabs = new ArrayList<>();
  private final List<MemorySegment> readOnlySlabs = new ArrayList<>(); // slabs.get(i).asReadOnly()
  private final TreeMap<Long, Long> freeByAddress = new TreeMap<>();
  private final TreeSet<Extent> freeBySize = new TreeSet<>();
  private byte[] slabState = new byte[8];
  private long[] slabLive = new long[8]; // bytes of each slab's allocated extents
  private long slabBytesTaken; // taken and draining slabs: what the OS backs (at most)
  private long mappedBytes; // every slab ever taken, returned ones included
  private long drainingBytes; // the length of every draining slab
  private long drainingIdle; // the bytes of draining slabs not allocated (in no list)
  private long drainingKept; // the bytes of draining slabs still backed (around live extents)
  private long[] slabKept = new long[8]; // each draining slab's part of drainingKept
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

  /** Bytes of the slabs taken from the OS and not yet returned, draining ones included. */
  long slabBytesTaken() {
    return slabBytesTaken;
  }

  /**
   * Bytes the OS backs for the cache (at most): the taken slabs, and of draining slabs the pages
   * around their extents still allocated.
   */
  long heldBytes() {
    return slabBytesTaken - drainingBytes + drainingKept;
  }

  /** Bytes of the slabs still draining: taken, but no longer allocated from. */
  long drainingBytes() {
    return drainingBytes;
  }

  /** Whether the memory of drained slabs goes back to the OS, so that the budget may shrink. */
  boolean releases() {
    return source.releases();
  }

  /**
   * Sets the budget. A larger one lets more slabs be taken; a smaller one stops new slabs from
   * being taken until {@link #drain draining} brings the slabs taken under it.
   */
  void setBudget(long budgetBytes) {
    this.budgetBytes = budgetBytes;
  }

  /** The slab an extent lies in. */
  static int slabOf(long address) {
    return (int) (address >>> SLAB_SHIFT);
  }

  /** Whether the extent at {@code address} lies in a draining slab. */
  boolean isDraining(long address) {
    return slabState[slabOf(address)] == DRAINING;
  }

  /**
   * The taken (not draining) slab to drain to give back {@code excessBytes}, given the bytes of
   * pinned samples and open reservations in each slab ({@code stuckBytes}, indexed by slab; their
   * pages stay until released): of the slabs at least that long, the one with the fewest stuck
   * bytes, then the fewest allocated (the cheapest to empty); else the longest. -1 when there is
   * none.
   */
  int drainCandidate(long excessBytes, long[] stuckBytes) {
    int best = -1;
    for (int s = 0; s < slabs.size(); s++) {
      if (slabState[s] == TAKEN && (best < 0 || better(s, best, excessBytes, stuckBytes))) {
        best = s;
      }
    }
    return best;
  }

  private boolean better(int a, int b, long excessBytes, long[] stuckBytes) {
    long la = slabs.get(a).byteSize();
    long lb = slabs.get(b).byteSize();
    boolean ca = la >= excessBytes;
    boolean cb = lb >= excessBytes;
    if (ca != cb) {
      return ca;
    }
    if (!ca) {
      return la > lb;
    }
    long sa = a < stuckBytes.length ? stuckBytes[a] : 0;
    long sb = b < stuckBytes.length ? stuckBytes[b] : 0;
    return sa != sb ? sa < sb : slabLive[a] < slabLive[b];
  }

  /** How many slabs there are, returned ones included: the bound of slab indices. */
  int slabCount() {
    return slabs.size();
  }

  /**
   * Takes every slab the budget allows now, to be populated before use: they count as taken but
   * nothing is placed in them until {@link #prepared}. Returns their indices.
   */
  int[] takePreparing() {
    int[] out = new int[0];
    while (nextSlabBytes() > 0) {
      int s = takeSlab(1, false);
      out = Arrays.copyOf(out, out.length + 1);
      out[out.length - 1] = s;
    }
    return out;
  }

  /** The memory of slab {@code s}. */
  MemorySegment slab(int s) {
    return slabs.get(s);
  }

  /** Populates {@code slab} through the source (called without the cache's lock). */
  void populate(MemorySegment slab) {
    source.populate(slab);
  }

  /** Slab {@code s}, from {@link #takePreparing}, is ready: its memory joins the free lists. */
  void prepared(int s) {
    if (slabState[s] != PREPARING) {
      throw new IllegalStateException("slab " + s + " is not being prepared");
    }
    slabState[s] = TAKEN;
    addFree((long) s << SLAB_SHIFT, slabs.get(s).byteSize());
  }

  /**
   * Stops allocating from slab {@code s} (taken, not draining): its free extents leave the lists,
   * and the extents still allocated in it are freed into nothing. Returns true when it held none,
   * so was returned at once; otherwise it is returned when {@link #free} frees its last extent.
   */
  boolean drain(int s) {
    if (slabState[s] != TAKEN) {
      throw new IllegalStateException("slab " + s + " is not taken");
    }
    flushQuick(); // quick extents may lie in it
    long base = (long) s << SLAB_SHIFT;
    long length = slabs.get(s).byteSize();
    List<Map.Entry<Long, Long>> inSlab =
        new ArrayList<>(freeByAddress.subMap(base, base + length).entrySet());
    for (Map.Entry<Long, Long> e : inSlab) {
      removeFree(e.getKey(), e.getValue());
    }
    slabState[s] = DRAINING;
    drainingBytes += length;
    drainingIdle += length - slabLive[s];
    slabKept[s] = length;
    drainingKept += length;
    if (slabLive[s] == 0) {
      returnSlab(s);
      return true;
    }
    return false;
  }

  /**
   * Gives back to the OS every whole page of draining slab {@code s} outside {@code live}, its
   * extents still allocated ({address, length} pairs sorted by address), which keep their bytes.
   */
  void releaseAround(int s, long[][] live) {
    if (slabState[s] != DRAINING) {
      throw new IllegalStateException("slab " + s + " is not draining");
    }
    MemorySegment slab = slabs.get(s);
    long page = source.pageBytes();
    long released = 0;
    long gapStart = 0; // offsets in the slab
    for (int i = 0; i <= live.length; i++) {
      long gapEnd = i < live.length ? live[i][0] & OFFSET_MASK : slab.byteSize();
      long from = (gapStart + page - 1) / page * page;
      long to = gapEnd / page * page;
      if (to > from) {
        source.release(slab.asSlice(from, to - from));
        released += to - from;
      }
      if (i < live.length) {
        gapStart = gapEnd + live[i][1];
      }
    }
    long kept = slab.byteSize() - released;
    drainingKept += kept - slabKept[s];
    slabKept[s] = kept;
  }

  private void returnSlab(int s) {
    long length = slabs.get(s).byteSize();
    source.release(slabs.get(s));
    slabState[s] = RETURNED;
    drainingBytes -= length;
    drainingIdle -= length;
    drainingKept -= slabKept[s];
    slabKept[s] = 0;
    slabBytesTaken -= length;
  }

  /** Takes every slab the budget allows now instead of on demand. */
  void takeAllSlabs() {
    while (nextSlabBytes() > 0) {
      takeSlab(1, true);
    }
  }

  /**
   * An extent of exactly {@code lengthBytes} (a multiple of the alignment), or -1 when no free
   * extent is long enough and the budget allows no new slab that would be.
   */
  long allocate(long lengthBytes) {
    if (lengthBytes == quickLength) {
      if (quickCount > 0) {
        long address = quickAddresses[--quickCount];
        slabLive[slabOf(address)] += lengthBytes;
        return address;
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
      takeSlab(lengthBytes, true);
      e = freeBySize.ceiling(new Extent(lengthBytes, -1));
    }
    removeFree(e.address, e.lengthBytes);
    if (e.lengthBytes > lengthBytes) {
      addFree(e.address + lengthBytes, e.lengthBytes - lengthBytes);
    }
    slabLive[slabOf(e.address)] += lengthBytes;
    return e.address;
  }

  /**
   * Returns an extent {@link #allocate} handed out: to the quick list when it has the length last
   * asked for, else merged into the trees; in a draining slab, to nothing (the slab goes back to
   * the OS with its last extent).
   */
  void free(long address, long lengthBytes) {
    int s = slabOf(address);
    slabLive[s] -= lengthBytes;
    if (slabState[s] == DRAINING) {
      drainingIdle += lengthBytes;
      if (slabLive[s] == 0) {
        returnSlab(s);
      }
      return;
    }
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
      if (slabState[s] != TAKEN) {
        continue; // nothing is placed in a draining or returned slab
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
          || slabState[slab] != TAKEN
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
          || slabState[slab] != TAKEN
          || (address & OFFSET_MASK) + quickLength > slabs.get(slab).byteSize()) {
        throw new AssertionError(
            "quick extent address="
                + address
                + " length="
                + quickLength
                + " overlaps another free extent or leaves its slab");
      }
    }
    long live = 0;
    long draining = 0;
    long idle = 0;
    long kept = 0;
    long preparing = 0;
    long taken = 0;
    for (int s = 0; s < slabs.size(); s++) {
      long length = slabs.get(s).byteSize();
      if (slabLive[s] < 0
          || slabLive[s] > length
          || (slabState[s] == RETURNED && slabLive[s] != 0)) {
        throw new AssertionError("slab " + s + " state=" + slabState[s] + " live=" + slabLive[s]);
      }
      live += slabLive[s];
      if (slabState[s] != RETURNED) {
        taken += length;
      }
      if (slabState[s] == PREPARING) {
        preparing += length;
      }
      if (slabState[s] == DRAINING) {
        draining += length;
        idle += length - slabLive[s];
        kept += slabKept[s];
      } else if (slabKept[s] != 0) {
        throw new AssertionError("slab " + s + " state=" + slabState[s] + " kept=" + slabKept[s]);
      }
    }
    if (live != allocatedBytes
        || taken != slabBytesTaken
        || draining != drainingBytes
        || idle != drainingIdle
        || kept != drainingKept) {
      throw new AssertionError(
          "slabs: live="
              + live
              + " taken="
              + taken
              + " draining="
              + draining
              + " idle="
              + idle
              + " kept="
              + kept
              + ", recorded allocated="
              + allocatedBytes
              + " taken="
              + slabBytesTaken
              + " draining="
              + drainingBytes
              + " idle="
              + drainingIdle
              + " kept="
              + drainingKept);
    }
    if (sum != freeBytes
        || freeBytes + quickBytes + allocatedBytes + drainingIdle + preparing != slabBytesTaken) {
      throw new AssertionError(
          "free="
              + sum
              + " (counted "
              + freeBytes
              + ") + quick="
              + quickBytes
              + " + allocated="
              + allocatedBytes
              + " + draining idle="
              + drainingIdle
              + " + preparing="
              + preparing
              + " != slabBytes="
              + slabBytesTaken);
    }
    if (drainingBytes == 0 && slabBytesTaken > budgetBytes) {
      throw new AssertionError("slabBytes=" + slabBytesTaken + " > budgetBytes=" + budgetBytes);
    }
  }

  private long nextSlabBytes() {
    return Math.min(slabBytes, budgetBytes - slabBytesTaken);
  }

  /**
   * Takes a slab of at least {@code minLength} bytes: the longest returned one the budget allows
   * (its address range is still mapped; its pages come back on use), else a new one as long as the
   * budget allows. Its memory joins the free lists when {@code ready}, else it is {@link
   * #PREPARING}. Returns its index.
   */
  private int takeSlab(long minLength, boolean ready) {
    long length = nextSlabBytes();
    int s = -1;
    for (int i = 0; i < slabs.size(); i++) {
      long l = slabs.get(i).byteSize();
      if (slabState[i] == RETURNED
          && l >= minLength
          && l <= length
          && (s < 0 || l > slabs.get(s).byteSize())) {
        s = i;
      }
    }
    if (s >= 0) {
      length = slabs.get(s).byteSize();
    } else {
      MemorySegment slab = source.take(mappedBytes, length);
      mappedBytes += length;
      s = slabs.size();
      if (s == slabState.length) {
        slabState = Arrays.copyOf(slabState, s * 2);
        slabLive = Arrays.copyOf(slabLive, s * 2);
        slabKept = Arrays.copyOf(slabKept, s * 2);
      }
      slabs.add(slab);
      readOnlySlabs.add(slab.asReadOnly());
    }
    slabBytesTaken += length;
    if (ready) {
      slabState[s] = TAKEN;
      addFree((long) s << SLAB_SHIFT, length);
    } else {
      slabState[s] = PREPARING;
    }
    return s;
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
