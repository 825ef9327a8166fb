package io.sluice.cache;

import io.sluice.nativeio.HugePageMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Off-heap, byte-budgeted cache of sample bytes keyed by sample id, evicting through a pluggable
 * {@link EvictionPolicy}. Shared by the node's stream threads and the prefetcher thread; every
 * method is thread-safe.
 *
 * <p>Fill it with {@link #put} (copies) or {@link #reserve} + {@link Reservation#commit()} (read
 * straight into cache memory); read it with {@link #pin}, which returns a {@link Handle} whose
 * bytes cannot move or be evicted until it is closed. Tell it the consumers' step with {@link
 * #advanceTo} so a plan-driven policy knows what "future" means. {@link #resize} changes the budget
 * while the cache is in use. {@link #close()} frees all memory at once.
 */
public final class SampleCache implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(SampleCache.class.getName());

  /*
   * Implementation notes.
   *
   * Eviction. With the plan, every future access of this node is known (LookAhead.nextUseStep,
   * this epoch and the next), so the cache can run Belady's MIN: on a miss with a full cache,
   * evict the block whose next reference is farthest in the future (L. A. Belady, "A study of
   * replacement algorithms for a virtual-storage computer", IBM Systems Journal 5(2), 1966; its
   * optimality for unit-size blocks is proved in R. L. Mattson et al., "Evaluation techniques for
   * storage hierarchies", IBM Systems Journal 9(2), 1970). It is usually called OPT because it is
   * only realisable with an oracle, which here the planner is (NoPFS, Dryden et al., SC 2021,
   * exploits the same clairvoyance for prefetching). What differs from the textbook algorithm:
   *  - time is the training step, not the reference: the samples of one step are needed together
   *    (one batch), so all of them count as used at that step, and a sample put during the step
   *    it is needed in ranks as needed now (the last candidate) until the step ends. With one
   *    access per step this is MIN exactly (SampleCachePolicyTest checks it against a brute-force
   *    MIN and an exhaustive OPT); with many, ties inside a step can cost a little;
   *  - pinned samples (a reader holds their bytes) and open reservations are not candidates, so
   *    the victim is the farthest-needed unpinned sample, and a put that cannot fit once every
   *    unpinned sample is gone is refused up front instead of emptying the cache for nothing;
   *  - samples have sizes. MIN is then a heuristic (variable-size OPT is NP-hard; see Berger,
   *    Beckmann and Harchol-Balter, "Practical bounds on optimal caching with variable object
   *    sizes", SIGMETRICS 2018); ties between equal next uses evict the larger sample first;
   *  - MIN is demand paging: the missed sample is always admitted. Bypassing samples whose next
   *    use is later than every candidate's would save a few more misses; not done (yet).
   * BeladyPolicy keeps candidates in buckets by next-use step (a tree of steps, a hash map to
   * find a step's bucket), so a victim and a use cost O(1) plus one oracle call (one Feistel
   * inversion per epoch). Keys go stale when the consumers pass a step at which a sample was
   * expected but not read; advanceTo recomputes exactly those, from the first bucket.
   *
   * Memory. One shared Arena; slabs of slabBytes (4096-aligned) are taken lazily until the budget
   * is reached, so the budget is a hard limit on off-heap bytes, not a target. When resize()
   * lowers it, whole slabs drain: those holding the fewest bytes stop taking samples, their
   * unpinned samples are evicted at once (whatever their next use: a slab is freed as a unit) and
   * their pages go back to the OS (madvise) at once; the pages of pinned samples and open
   * reservations follow when those are released and the slab is empty; those kept pages count
   * against the budget, so a slab more drains when they would leave the cache over it. Inside the
   * slabs, SlabAllocator hands out extents best-fit, rounded to alignmentBytes, coalescing free
   * extents (after a stop in a quick list for the common length). A
   * sample lives in one contiguous extent (a pinned view is one MemorySegment), so variable sizes
   * fragment the slabs; the cache then evicts more than one victim for a put. Metadata (an Entry
   * per sample, which is also Belady's node for it) is on the heap; sample bytes never are.
   *
   * Concurrency. One ReentrantLock guards all metadata: the entry map, the allocator, the policy
   * and the counters. The critical sections are a hash lookup, a tree update and an oracle call
   * (well under a microsecond); the byte copies of put() and the reads into a reservation happen
   * outside the lock, between reserve() and commit(). Contention is a handful of threads (the
   * local ranks' streams and the prefetcher) doing far less than a million operations a second,
   * so striping would buy nothing measurable, and Belady needs one global order of candidates
   * anyway. Pins make the unlocked copies safe: an extent is reused only after its entry is
   * removed, which a pin or an open reservation prevents.
   */

  /** The default slab size when the budget is larger. */
  public static final long DEFAULT_SLAB_BYTES = 64L << 20;

  /** The default allocation granularity: a cache line. */
  public static final int DEFAULT_ALIGNMENT_BYTES = 64;

  /**
   * A cached or reserved sample. An entry that leaves the cache (evicted, or its reservation
   * aborted) is reused for a later sample: an entry lives about an epoch, long enough to be
   * promoted, so a new one for every sample read was most of what each young collection copied, and
   * old-generation garbage after that.
   */
  static final class Entry extends PolicyNode {
    long address;
    long lengthBytes;
    long allocatedBytes;
    int pins;
    boolean committed;
    Object policyToken; // the policy's record of this sample, from onInsertNode
    // Links in the list of stuck entries (pinned or reserved); both null while not stuck.
    Entry stuckPrev;
    Entry stuckNext;
    Entry nextSpare; // in the list of entries to reuse

    Entry(long sampleId, long address, long lengthBytes, long allocatedBytes) {
      super(sampleId);
      this.address = address;
      this.lengthBytes = lengthBytes;
      this.allocatedBytes = allocatedBytes;
    }

    /** Makes this spare entry a new one, as the constructor would. */
    void reuse(long sampleId, long address, long lengthBytes, long allocatedBytes) {
      reset(sampleId);
      this.address = address;
      this.lengthBytes = lengthBytes;
      this.allocatedBytes = allocatedBytes;
      pins = 0;
      committed = false;
      policyToken = null;
      stuckPrev = stuckNext = nextSpare = null;
    }
  }

  /** Spare entries kept for reuse at most: a burst of evictions for one large sample. */
  private static final int MAX_SPARE_ENTRIES = 1024;

  /** Slabs of anonymous memory on huge pages, whose pages a drained slab gives back. */
  private record MappedSlabs(Arena arena) implements SlabAllocator.SlabSource {
    @Override
    public MemorySegment take(long offset, long lengthBytes) {
      return HugePageMemory.map(lengthBytes, arena);
    }

    @Override
    public boolean releases() {
      return true;
    }

    @Override
    public long pageBytes() {
      return HugePageMemory.HUGE_PAGE_BYTES;
    }

    @Override
    public void populate(MemorySegment slab) {
      HugePageMemory.populate(slab); // false on kernels before 5.14: faulted in on use instead
    }

    @Override
    public void release(MemorySegment range) {
      try {
        HugePageMemory.release(range);
      } catch (RuntimeException e) {
        // The pages stay resident until close; the cache goes on (under the lock, on any thread
        // that releases a sample: failing there would fail its stream for the cache's trouble).
        LOG.log(Level.SEVERE, "sample cache: memory not given back to the OS", e);
      }
    }
  }

  private final ReentrantLock lock = new ReentrantLock();
  private long budgetBytes;
  private final long alignmentBytes;
  private final Arena arena;
  private final FileChannel backing; // null: anonymous memory
  private final SlabAllocator allocator;
  private final EvictionPolicy policy;
  private final LongMap<Entry> entries = new LongMap<>();
  private final Object[] lookups = new Object[256]; // pinCached's look-ups, under the lock
  // Extents that must not move (pinned samples and open reservations), linked through their
  // entries: joining and leaving are O(1) on every pin, unpin, reserve and commit, and only the
  // rare allocation that needs to know where they lie sorts them.
  private final Entry stuck = new Entry(-1, -1, 0, 0);
  private Entry spareEntries; // entries to reuse, linked through nextSpare
  private int spareCount;
  private int stuckCount;
  private long currentStep;
  private long hits;
  private long misses;
  private long evictions;
  private long rejections;
  private long committedEntries;
  private long usedBytes;
  private long pinnedBytes;
  private long openHandles;
  private long openReservations;
  private boolean closed;

  private SampleCache(Builder b) {
    this.budgetBytes = b.budgetBytes;
    this.alignmentBytes = b.alignmentBytes;
    this.policy = b.policy;
    stuck.stuckNext = stuck.stuckPrev = stuck;
    long slab = b.slabBytes == 0 ? Math.min(b.budgetBytes, DEFAULT_SLAB_BYTES) : b.slabBytes;
    policy.attach(budgetBytes);
    this.arena = Arena.ofShared();
    this.backing = b.backing;
    long budget = roundDown(budgetBytes, alignmentBytes);
    long slabLength = roundDown(slab, alignmentBytes);
    this.allocator =
        backing != null
            ? new SlabAllocator(
                (offset, length) -> {
                  try {
                    return backing.map(FileChannel.MapMode.READ_WRITE, offset, length, arena);
                  } catch (IOException e) {
                    throw new UncheckedIOException(
                        "spill file: cannot map offset=" + offset + " length=" + length, e);
                  }
                },
                budget,
                slabLength)
            : HugePageMemory.isAvailable()
                ? new SlabAllocator(new MappedSlabs(arena), budget, slabLength)
                : new SlabAllocator(arena, budget, slabLength);
    if (b.preallocate) {
      try {
        allocator.takeAllSlabs();
      } catch (RuntimeException | OutOfMemoryError e) {
        arena.close();
        closeBacking();
        throw e;
      }
    }
  }

  private void closeBacking() {
    if (backing != null) {
      try {
        backing.close();
      } catch (IOException ignored) {
        // the file is unlinked already: closing frees its blocks, nothing is left to lose
      }
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * Copies {@code bytes} into the cache under {@code sampleId} (evicting through the policy to make
   * room) and returns true; returns false, copying nothing, when the sample is already cached or
   * being loaded, or cannot fit even with every unpinned sample evicted (counted as a rejection).
   */
  public boolean put(long sampleId, MemorySegment bytes) {
    try (Reservation r = reserve(sampleId, bytes.byteSize())) {
      if (r == null) {
        return false;
      }
      MemorySegment.copy(bytes, 0, r.segment(), 0, bytes.byteSize());
      r.commit();
      return true;
    }
  }

  /**
   * Sets aside {@code lengthBytes} of cache memory for {@code sampleId}, evicting through the
   * policy to make room; null when the sample is already cached or being loaded, or the bytes
   * cannot fit even with every unpinned sample evicted (counted as a rejection).
   */
  public Reservation reserve(long sampleId, long lengthBytes) {
    return reserve(sampleId, lengthBytes, NextUse.NEVER);
  }

  /**
   * As {@link #reserve(long, long)} for a read-ahead of a sample needed at {@code useStep}: evicts
   * only samples the policy says are needed later than that (Belady knows; other policies evict as
   * usual), so reading ahead never pushes out what is needed sooner. Null, evicting nothing, when
   * making room would take such a sample (counted as a rejection).
   */
  public Reservation reserveBefore(long sampleId, long lengthBytes, long useStep) {
    return reserve(sampleId, lengthBytes, useStep);
  }

  private Reservation reserve(long sampleId, long lengthBytes, long useStep) {
    if (sampleId < 0) {
      throw new IllegalArgumentException("sampleId=" + sampleId + " must be >= 0");
    }
    if (lengthBytes < 0) {
      throw new IllegalArgumentException("lengthBytes=" + lengthBytes + " must be >= 0");
    }
    lock.lock();
    try {
      ensureOpen();
      if (entries.containsKey(sampleId)) {
        return null;
      }
      long need = Math.max(alignmentBytes, roundUp(lengthBytes, alignmentBytes));
      long address = lengthBytes > Long.MAX_VALUE / 2 ? -1 : allocateEvicting(need, useStep);
      if (address < 0) {
        rejections++;
        return null;
      }
      Entry e = newEntry(sampleId, address, lengthBytes, need);
      entries.put(sampleId, e);
      stick(e);
      usedBytes += need;
      openReservations++;
      return new Reservation(this, e, allocator.segment(address, lengthBytes));
    } finally {
      lock.unlock();
    }
  }

  /**
   * Pins a cached sample and returns its bytes (a hit), or returns null (a miss). The sample cannot
   * be evicted until every handle on it is closed.
   */
  public Handle pin(long sampleId) {
    lock.lock();
    try {
      ensureOpen();
      Entry e = entries.get(sampleId);
      if (e == null || !e.committed) {
        misses++;
        policy.onMiss(sampleId);
        return null;
      }
      return pinLocked(e);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Pins a cached sample for a peer daemon, or returns null when it is not here (or the cache is
   * closed). Unlike {@link #pin} it counts neither a hit nor a miss and leaves the eviction order
   * alone: a peer's read says nothing about when this node needs the sample.
   */
  public Handle lend(long sampleId) {
    lock.lock();
    try {
      if (closed) {
        return null;
      }
      Entry e = entries.get(sampleId);
      if (e == null || !e.committed) {
        return null;
      }
      if (e.pins++ == 0) {
        stick(e);
        pinnedBytes += e.allocatedBytes;
        policy.onPin(e.sampleId, e.policyToken);
      }
      openHandles++;
      return new Handle(this, e, allocator.readOnlySegment(e.address, e.lengthBytes));
    } finally {
      lock.unlock();
    }
  }

  /** A hit on a committed entry: pins it (taking it out of the candidates on its first pin). */
  private Handle pinLocked(Entry e) {
    hits++;
    if (e.pins++ == 0) {
      stick(e);
      pinnedBytes += e.allocatedBytes;
      policy.onPin(e.sampleId, e.policyToken);
    }
    policy.onHit(e.sampleId, e.policyToken);
    openHandles++;
    return new Handle(this, e, allocator.readOnlySegment(e.address, e.lengthBytes));
  }

  /**
   * {@link #pin} for {@code ids[0..count)} under one lock: {@code out[i]} gets a handle for each
   * cached sample; a sample not cached leaves {@code out[i]} null and is neither a hit nor a miss
   * here (the caller pins it later, when it has been loaded). Returns how many were pinned.
   */
  public int pinCached(long[] ids, int count, Handle[] out) {
    lock.lock();
    try {
      ensureOpen();
      // Every id looked up first, then pinned: see LongMap.getAll.
      Object[] found = count <= lookups.length ? lookups : new Object[count];
      entries.getAll(ids, count, found);
      for (int i = 0; i < count; i++) {
        if (found[i] instanceof Entry e && !e.committed) {
          found[i] = null; // reads each entry: those misses overlap too
        }
      }
      int pinned = 0;
      for (int i = 0; i < count; i++) {
        Entry e = (Entry) found[i];
        found[i] = null;
        if (e == null) {
          continue;
        }
        out[i] = pinLocked(e);
        pinned++;
      }
      return pinned;
    } finally {
      lock.unlock();
    }
  }

  /** Closes every non-null handle of {@code handles} under one lock. */
  public void releaseAll(Handle[] handles) {
    lock.lock();
    try {
      for (Handle h : handles) {
        if (h != null && h.cache == this) {
          releaseLocked(h);
        }
      }
    } finally {
      lock.unlock();
    }
    for (Handle h : handles) {
      if (h != null && h.cache != this) {
        h.close();
      }
    }
  }

  /**
   * Whether the sample is cached or being loaded (reserved, not yet committed). Not counted as a
   * hit or a miss.
   */
  public boolean holds(long sampleId) {
    lock.lock();
    try {
      ensureOpen();
      return entries.containsKey(sampleId);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Keeps, in order at the front of {@code ids[0..count)}, the ids not cached (not committed), and
   * returns how many there are: {@link #contains} for a batch under one lock. Not counted as hits
   * or misses.
   */
  public int retainUncached(long[] ids, int count) {
    lock.lock();
    try {
      ensureOpen();
      int n = 0;
      for (int i = 0; i < count; i++) {
        Entry e = entries.get(ids[i]);
        if (e == null || !e.committed) {
          ids[n++] = ids[i];
        }
      }
      return n;
    } finally {
      lock.unlock();
    }
  }

  /** Whether the sample is cached (committed). Not counted as a hit or a miss. */
  public boolean contains(long sampleId) {
    lock.lock();
    try {
      ensureOpen();
      Entry e = entries.get(sampleId);
      return e != null && e.committed;
    } finally {
      lock.unlock();
    }
  }

  /**
   * The consumers reached {@code step}: samples used from now on are used at this step. Smaller
   * steps than the current one are ignored, so each local rank's stream may report its own; pass
   * the slowest rank's step for the best decisions.
   */
  public void advanceTo(long step) {
    if (step < 0) {
      throw new IllegalArgumentException("step=" + step + " must be >= 0");
    }
    lock.lock();
    try {
      ensureOpen();
      if (step > currentStep) {
        currentStep = step;
        policy.advanceTo(step);
      }
    } finally {
      lock.unlock();
    }
  }

  /**
   * Switches the policy to a new plan (at an epoch boundary the look-ahead moves on one epoch and
   * its steps are renumbered from its start): {@code currentStep} is in the new numbering.
   */
  public void replan(NextUse nextUse, long currentStep) {
    replan(nextUse, currentStep, 0, 0);
  }

  /**
   * As {@link #replan(NextUse, long)}, where the new plan numbers steps as the old one did and
   * answers every next use that the old one put in {@code [keptFrom, keptUntil)} with that same
   * step (see {@link EvictionPolicy#replan(NextUse, long, long, long)}); an empty range vouches for
   * nothing.
   */
  public void replan(NextUse nextUse, long currentStep, long keptFrom, long keptUntil) {
    if (nextUse == null) {
      throw new IllegalArgumentException("nextUse=null must be non-null");
    }
    if (currentStep < 0) {
      throw new IllegalArgumentException("currentStep=" + currentStep + " must be >= 0");
    }
    lock.lock();
    try {
      ensureOpen();
      this.currentStep = currentStep;
      if (keptFrom < keptUntil) {
        policy.replan(nextUse, currentStep, keptFrom, keptUntil);
      } else {
        policy.replan(nextUse, currentStep);
      }
    } finally {
      lock.unlock();
    }
  }

  /** The current step, as set by {@link #advanceTo} and {@link #replan}. */
  public long currentStep() {
    lock.lock();
    try {
      return currentStep;
    } finally {
      lock.unlock();
    }
  }

  public CacheStats stats() {
    lock.lock();
    try {
      return new CacheStats(
          hits,
          misses,
          evictions,
          rejections,
          committedEntries,
          usedBytes,
          pinnedBytes,
          allocator.slabBytesTaken(),
          budgetBytes);
    } finally {
      lock.unlock();
    }
  }

  /** Slabs mapped, returned ones included (for tests: returned slabs are taken again first). */
  int slabCount() {
    lock.lock();
    try {
      return allocator.slabCount();
    } finally {
      lock.unlock();
    }
  }

  /** Whether {@link #resize} may lower the budget: the cache's memory can go back to the OS. */
  public boolean canShrink() {
    return allocator.releases();
  }

  /**
   * Sets the budget to {@code budgetBytes} (rounded down to the alignment). A larger budget takes
   * effect at once. A smaller one drains whole slabs until what the cache holds ({@link
   * #heldBytes}) is within it: their unpinned samples are evicted and their memory goes back to the
   * OS now, but for the pages of pinned samples and open reservations, which go as those are
   * released. A reservation committed into a draining slab is dropped as it commits (a later {@link
   * #pin} misses).
   *
   * @throws UnsupportedOperationException when lowering the budget of a cache that cannot shrink
   *     ({@link #canShrink()})
   */
  public void resize(long budgetBytes) {
    if (budgetBytes < alignmentBytes) {
      throw new IllegalArgumentException(
          "budgetBytes=" + budgetBytes + " must be >= alignmentBytes=" + alignmentBytes);
    }
    lock.lock();
    try {
      ensureOpen();
      long budget = roundDown(budgetBytes, alignmentBytes);
      if (budget < this.budgetBytes && !allocator.releases()) {
        throw new UnsupportedOperationException(
            "sample cache: cannot shrink from budgetBytes="
                + this.budgetBytes
                + " to "
                + budget
                + ": its memory cannot go back to the OS");
      }
      this.budgetBytes = budget;
      allocator.setBudget(budget);
      drainToBudget();
      policy.resize(budget); // after: what the drain evicted is not the policy's to choose again
    } finally {
      lock.unlock();
    }
  }

  /**
   * Drains slabs until the memory held is within the budget: the pages kept around pinned samples
   * count, so a slab more may go to make up for them. Caller holds the lock.
   */
  private void drainToBudget() {
    long[] stuckBytes = null;
    while (allocator.heldBytes() > budgetBytes) {
      if (stuckBytes == null) {
        stuckBytes = new long[allocator.slabCount()];
        for (Entry x = stuck.stuckNext; x != stuck; x = x.stuckNext) {
          stuckBytes[SlabAllocator.slabOf(x.address)] += x.allocatedBytes;
        }
      }
      int slab = allocator.drainCandidate(allocator.heldBytes() - budgetBytes, stuckBytes);
      if (slab < 0) {
        break;
      }
      drain(slab);
    }
  }

  /**
   * Raises the budget to {@code budgetBytes} as {@link #resize} does, but takes the slabs it allows
   * at once and keeps samples out of them until the returned task has backed their memory: run it
   * on a thread of your choosing, so that the threads reading samples in do not pay for new memory
   * (zeroing it, and compaction for huge pages). The task populates without the cache's lock held.
   */
  public Runnable growPopulated(long budgetBytes) {
    int[] taken;
    MemorySegment[] memory;
    lock.lock();
    try {
      ensureOpen();
      long budget = roundDown(budgetBytes, alignmentBytes);
      if (budget < this.budgetBytes) {
        throw new IllegalArgumentException(
            "budgetBytes=" + budget + " is below the budget " + this.budgetBytes + ": use resize");
      }
      resize(budget); // the lock is reentrant
      taken = allocator.takePreparing();
      memory = new MemorySegment[taken.length];
      for (int i = 0; i < taken.length; i++) {
        memory[i] = allocator.slab(taken[i]);
      }
    } finally {
      lock.unlock();
    }
    return () -> {
      for (MemorySegment m : memory) {
        allocator.populate(m); // a system call on the range: harmless if the cache closed
      }
      lock.lock();
      try {
        if (closed) {
          return;
        }
        for (int s : taken) {
          allocator.prepared(s);
        }
        drainToBudget(); // in case the budget shrank meanwhile
      } finally {
        lock.unlock();
      }
    };
  }

  /** Drains slab {@code slab}: evicts its unpinned samples; the others go as they are released. */
  private void drain(int slab) {
    List<Entry> inSlab = new ArrayList<>();
    for (Entry e : entries.values()) {
      if (SlabAllocator.slabOf(e.address) == slab) {
        inSlab.add(e);
      }
    }
    if (allocator.drain(slab)) {
      return; // nothing was allocated in it: gone back whole
    }
    List<long[]> stuckInSlab = new ArrayList<>();
    for (Entry e : inSlab) {
      if (e.committed && e.pins == 0) {
        evict(e);
      } else {
        stuckInSlab.add(new long[] {e.address, e.allocatedBytes});
      }
    }
    if (!stuckInSlab.isEmpty()) {
      // The pinned samples and open reservations keep their pages until released; the rest of
      // the slab's memory goes back now.
      stuckInSlab.sort(java.util.Comparator.comparingLong(a -> a[0]));
      allocator.releaseAround(slab, stuckInSlab.toArray(new long[0][]));
    }
  }

  /**
   * Whether no slab is draining: every slab drained has gone back whole, its pinned samples
   * released (a slab goes back as its last sample is released, on that thread). For tests.
   */
  boolean drained() {
    lock.lock();
    try {
      return closed || allocator.drainingBytes() == 0;
    } finally {
      lock.unlock();
    }
  }

  /**
   * Memory the cache holds from the OS now (at most): its slabs, and of the draining ones the pages
   * of samples still pinned or being read.
   */
  public long heldBytes() {
    lock.lock();
    try {
      return closed ? 0 : allocator.heldBytes();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Frees all cache memory (the arena is closed: every segment handed out becomes inaccessible).
   * Idempotent.
   *
   * @throws IllegalStateException after freeing, when handles or reservations were still open: a
   *     leak in the caller
   */
  @Override
  public void close() {
    long leakedHandles;
    long leakedReservations;
    lock.lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      leakedHandles = openHandles;
      leakedReservations = openReservations;
      entries.clear();
      stuck.stuckNext = stuck.stuckPrev = stuck;
      stuckCount = 0;
      committedEntries = 0;
      usedBytes = 0;
      pinnedBytes = 0;
      arena.close();
      closeBacking();
    } finally {
      lock.unlock();
    }
    if (leakedHandles != 0 || leakedReservations != 0) {
      throw new IllegalStateException(
          "sample cache closed with openHandles="
              + leakedHandles
              + " openReservations="
              + leakedReservations
              + "; their segments are no longer accessible");
    }
  }

  void release(Handle h) {
    lock.lock();
    try {
      releaseLocked(h);
    } finally {
      lock.unlock();
    }
  }

  private void releaseLocked(Handle h) {
    if (h.released || closed) {
      h.released = true;
      return;
    }
    h.released = true;
    openHandles--;
    Entry e = h.entry;
    if (--e.pins == 0) {
      unstick(e);
      pinnedBytes -= e.allocatedBytes;
      policy.onUnpin(e.sampleId, e.policyToken);
      if (allocator.isDraining(e.address)) {
        evict(e);
      }
    }
  }

  void commit(Reservation r) {
    lock.lock();
    try {
      ensureOpen();
      if (r.done) {
        throw new IllegalStateException(
            "reservation sampleId=" + r.sampleId() + " is already committed or closed");
      }
      Entry e = r.entry;
      if (allocator.isDraining(e.address)) {
        abortLocked(r); // its slab is going back to the OS
        return;
      }
      try {
        e.policyToken = policy.onInsertNode(e, e.allocatedBytes);
      } catch (RuntimeException ex) {
        abortLocked(r);
        throw ex;
      }
      r.done = true;
      openReservations--;
      e.committed = true;
      committedEntries++;
      unstick(e);
    } finally {
      lock.unlock();
    }
  }

  void abort(Reservation r) {
    lock.lock();
    try {
      if (closed) {
        r.done = true;
        return;
      }
      if (!r.done) {
        abortLocked(r);
      }
    } finally {
      lock.unlock();
    }
  }

  private void abortLocked(Reservation r) {
    Entry e = r.entry;
    r.done = true;
    openReservations--;
    entries.remove(e.sampleId);
    unstick(e);
    usedBytes -= e.allocatedBytes;
    allocator.free(e.address, e.allocatedBytes);
    spare(e);
  }

  private Entry newEntry(long sampleId, long address, long lengthBytes, long allocatedBytes) {
    Entry e = spareEntries;
    if (e == null) {
      return new Entry(sampleId, address, lengthBytes, allocatedBytes);
    }
    spareEntries = e.nextSpare;
    spareCount--;
    e.reuse(sampleId, address, lengthBytes, allocatedBytes);
    return e;
  }

  /** Keeps an entry that left the cache (no handle or reservation can reach it) for reuse. */
  private void spare(Entry e) {
    if (spareCount < MAX_SPARE_ENTRIES) {
      e.nextSpare = spareEntries;
      spareEntries = e;
      spareCount++;
    }
  }

  /**
   * An extent of {@code need} bytes, evicting as the policy says but no sample the policy knows to
   * be needed at or before {@code useStep}; -1 when it cannot fit.
   */
  private long allocateEvicting(long need, long useStep) {
    long address = allocator.allocate(need);
    if (address >= 0) {
      return address;
    }
    // Evicting the victim frees a contiguous extent of its size; only when that is too small does
    // it take a look at where the unmovable extents leave room (a walk of the slabs).
    Entry victim = victimEntry();
    if ((victim == null || victim.allocatedBytes < need)
        && !allocator.couldFitWithout(stuckExtents(), need)) {
      return -1;
    }
    while (true) {
      if (victim == null) {
        throw new IllegalStateException(
            "policy="
                + policy.name()
                + " has no victim, but unpinned samples hold room for lengthBytes="
                + need);
      }
      if (useStep != NextUse.NEVER && policy.victimNextUse() <= useStep) {
        return -1; // what is left is needed no later than the sample asking for room
      }
      evict(victim);
      address = allocator.allocate(need);
      if (address >= 0) {
        return address;
      }
      victim = victimEntry();
    }
  }

  /** The entry of the policy's victim, or null when the policy has none. */
  private Entry victimEntry() {
    if (policy.victimNode() instanceof Entry e) {
      return e; // the policy keeps this cache's entries as its nodes (attach: one cache only)
    }
    long id = policy.victim();
    if (id == EvictionPolicy.NO_VICTIM) {
      return null;
    }
    Entry e = entries.get(id);
    if (e == null) {
      throw new IllegalStateException(
          "policy=" + policy.name() + " chose sampleId=" + id + ", not a cached sample");
    }
    return e;
  }

  private void evict(Entry e) {
    if (!e.committed || e.pins != 0) {
      throw new IllegalStateException(
          "policy=" + policy.name() + " chose sampleId=" + e.sampleId + ", not an unpinned sample");
    }
    entries.remove(e.sampleId);
    policy.onRemove(e.sampleId, e.policyToken);
    allocator.free(e.address, e.allocatedBytes);
    usedBytes -= e.allocatedBytes;
    committedEntries--;
    evictions++;
    spare(e);
  }

  private void stick(Entry e) {
    Entry last = stuck.stuckPrev;
    e.stuckPrev = last;
    e.stuckNext = stuck;
    last.stuckNext = e;
    stuck.stuckPrev = e;
    stuckCount++;
  }

  private void unstick(Entry e) {
    e.stuckPrev.stuckNext = e.stuckNext;
    e.stuckNext.stuckPrev = e.stuckPrev;
    e.stuckPrev = e.stuckNext = null;
    stuckCount--;
  }

  /** The stuck extents as {address, allocated bytes} pairs, by address. */
  private long[][] stuckExtents() {
    long[][] out = new long[stuckCount][];
    int i = 0;
    for (Entry x = stuck.stuckNext; x != stuck; x = x.stuckNext) {
      out[i++] = new long[] {x.address, x.allocatedBytes};
    }
    java.util.Arrays.sort(out, java.util.Comparator.comparingLong(a -> a[0]));
    return out;
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("sample cache is closed");
    }
  }

  /**
   * Checks the allocator, the byte counters and the budget against the entries; throws {@link
   * AssertionError} naming the first inconsistency. For tests.
   */
  void checkInvariants() {
    lock.lock();
    try {
      if (closed) {
        return;
      }
      long used = 0;
      long pinned = 0;
      long committed = 0;
      long stuckCount = 0;
      for (Entry e : entries.values()) {
        used += e.allocatedBytes;
        if (e.pins > 0) {
          pinned += e.allocatedBytes;
        }
        if (e.committed) {
          committed++;
        }
        if (e.pins > 0 || !e.committed) {
          stuckCount++;
          if (e.stuckNext == null) {
            throw new AssertionError(
                "sampleId=" + e.sampleId + " is pinned or reserved, not stuck");
          }
        }
      }
      if (used != usedBytes || pinned != pinnedBytes || committed != committedEntries) {
        throw new AssertionError(
            "counted used="
                + used
                + " pinned="
                + pinned
                + " entries="
                + committed
                + ", recorded "
                + usedBytes
                + ", "
                + pinnedBytes
                + ", "
                + committedEntries);
      }
      long listed = 0;
      for (Entry x = stuck.stuckNext; x != stuck; x = x.stuckNext) {
        listed++;
      }
      if (stuckCount != this.stuckCount || listed != stuckCount) {
        throw new AssertionError(
            "stuck entries: counted "
                + stuckCount
                + ", recorded "
                + this.stuckCount
                + ", listed "
                + listed);
      }
      if (usedBytes > Math.max(budgetBytes, allocator.slabBytesTaken())) {
        throw new AssertionError("usedBytes=" + usedBytes + " > budgetBytes=" + budgetBytes);
      }
      for (Entry e : entries.values()) {
        if (allocator.isDraining(e.address) && e.committed && e.pins == 0) {
          throw new AssertionError("sampleId=" + e.sampleId + " is unpinned in a draining slab");
        }
      }
      allocator.checkInvariants(usedBytes);
    } finally {
      lock.unlock();
    }
  }

  private static long roundUp(long value, long alignment) {
    return (value + alignment - 1) & -alignment;
  }

  private static long roundDown(long value, long alignment) {
    return value & -alignment;
  }

  /** Builds a {@link SampleCache}; rejects bad values naming the option and the value. */
  public static final class Builder {
    private long budgetBytes;
    private long slabBytes;
    private int alignmentBytes = DEFAULT_ALIGNMENT_BYTES;
    private EvictionPolicy policy;
    private boolean preallocate;
    private FileChannel backing;

    private Builder() {}

    /** The hard limit on off-heap bytes (rounded down to the alignment). Required. */
    public Builder budgetBytes(long budgetBytes) {
      if (budgetBytes < 1) {
        throw new IllegalArgumentException("budgetBytes=" + budgetBytes + " must be >= 1");
      }
      this.budgetBytes = budgetBytes;
      return this;
    }

    /**
     * The size of each slab taken from the OS, and so the largest sample the cache holds. Default:
     * the budget, up to {@link #DEFAULT_SLAB_BYTES}.
     */
    public Builder slabBytes(long slabBytes) {
      if (slabBytes < 1 || slabBytes > SlabAllocator.MAX_SLAB_BYTES) {
        throw new IllegalArgumentException(
            "slabBytes=" + slabBytes + " must be in [1, " + SlabAllocator.MAX_SLAB_BYTES + "]");
      }
      this.slabBytes = slabBytes;
      return this;
    }

    /**
     * Address and length granularity of every sample: a power of two in [8, 4096]. 4096 suits
     * O_DIRECT reads into reservations. Default {@link #DEFAULT_ALIGNMENT_BYTES}.
     */
    public Builder alignmentBytes(int alignmentBytes) {
      if (alignmentBytes < 8 || alignmentBytes > 4096 || Integer.bitCount(alignmentBytes) != 1) {
        throw new IllegalArgumentException(
            "alignmentBytes=" + alignmentBytes + " must be a power of two in [8, 4096]");
      }
      this.alignmentBytes = alignmentBytes;
      return this;
    }

    /** The eviction policy: a fresh instance, owned by this cache from now on. Required. */
    public Builder policy(EvictionPolicy policy) {
      if (policy == null) {
        throw new IllegalArgumentException("policy=null must be non-null");
      }
      this.policy = policy;
      return this;
    }

    /**
     * Keeps the samples in the pages of a file in {@code folder} (an NVMe spill tier) instead of
     * anonymous memory: its slabs are mapped from a file created there and unlinked at once, so the
     * kernel writes the bytes back to the device under memory pressure and the file's blocks go
     * when the cache closes or the process dies. The budget then bounds the file's size.
     *
     * @throws IOException naming the folder when the file cannot be made there
     */
    public Builder backingFolder(Path folder) throws IOException {
      Path file;
      try {
        file = Files.createTempFile(folder, "sluice-spill-", ".slabs");
      } catch (IOException e) {
        throw new IOException("spill folder=" + folder + ": cannot create a file there: " + e, e);
      }
      FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
      Files.delete(file);
      this.backing = ch;
      return this;
    }

    /** Takes the whole budget from the OS at build instead of slab by slab on demand. */
    public Builder preallocate(boolean preallocate) {
      this.preallocate = preallocate;
      return this;
    }

    public SampleCache build() {
      if (budgetBytes == 0) {
        throw new IllegalArgumentException("budgetBytes is required");
      }
      if (policy == null) {
        throw new IllegalArgumentException("policy is required");
      }
      if (budgetBytes < alignmentBytes) {
        throw new IllegalArgumentException(
            "budgetBytes=" + budgetBytes + " must be >= alignmentBytes=" + alignmentBytes);
      }
      if (slabBytes != 0 && slabBytes < alignmentBytes) {
        throw new IllegalArgumentException(
            "slabBytes=" + slabBytes + " must be >= alignmentBytes=" + alignmentBytes);
      }
      return new SampleCache(this);
    }
  }
}
