package io.sluice.server;

import io.sluice.cache.SampleCache;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.memory.AllocationListener;
import org.apache.arrow.memory.AllocationOutcome;
import org.apache.arrow.memory.BufferAllocator;

/**
 * The daemon's memory budget, split between the sample caches (read-ahead) and delivery (Arrow
 * buffers of batches being built and sent, shm rings, cuda staging). Each side has a base share;
 * delivery memory that stays idle is lent to a cache that is evicting, a step at a time, and taken
 * back as soon as delivery runs short: an Arrow allocation that would fail, a ring that would not
 * fit, or less than the headroom free at a check. Taking back drains whole cache slabs ({@link
 * io.sluice.cache.SampleCache#resize}): their memory goes back to the OS at once, but for the pages
 * of samples pinned in them, which follow as they are released.
 *
 * <p>The Arrow root's limit is always delivery's base share minus what the caches hold on loan
 * (lowered before a cache grows, raised only once its memory is back), so caches and delivery
 * together never exceed the budget. Thread-safe: checks run on the daemon's own thread, failed
 * allocations on whichever thread allocates.
 */
final class MemorySplit implements AllocationListener, AutoCloseable {
  private static final Logger LOG = Logger.getLogger(MemorySplit.class.getName());

  /** System property: {@code false} keeps the split fixed at half and half. */
  static final String LEND_PROPERTY = "sluice.memory.lend";

  /** What one loan moves: a cache slab. */
  static final long STEP_BYTES = SampleCache.DEFAULT_SLAB_BYTES;

  /** How often delivery's use is looked at. */
  static final long CHECK_MS = 250;

  /** Delivery's peak use over this long is what it keeps, with the headroom, before lending. */
  static final long PEAK_WINDOW_MS = 10_000;

  /** After delivery ran short, nothing is lent for this long. */
  static final long QUIET_AFTER_SHORT_MS = 30_000;

  private final long deliveryBase;
  private final long headroom;
  private final boolean lending;
  private final long[] recentPeaks = new long[(int) (PEAK_WINDOW_MS / CHECK_MS)];
  private int nextPeak;
  private long quietUntil; // System.nanoTime() before which nothing is lent
  private BufferAllocator root;
  private ReadEngine engine;
  private Thread checker;
  private volatile boolean closed;

  /**
   * @param deliveryBase delivery's share of the budget: the Arrow root's limit with nothing lent
   * @param lending whether idle delivery memory may be lent at all (a cache that cannot shrink, or
   *     no read-ahead, turns it off)
   */
  MemorySplit(long deliveryBase, boolean lending) {
    this.deliveryBase = deliveryBase;
    this.headroom = Math.max(32L << 20, deliveryBase / 8);
    this.lending = lending && !"false".equals(System.getProperty(LEND_PROPERTY));
    this.quietUntil = System.nanoTime();
  }

  /** Starts lending from {@code root} (created with this listener) to {@code engine}'s caches. */
  synchronized void start(BufferAllocator root, ReadEngine engine) {
    this.root = root;
    this.engine = engine;
    if (lending) {
      checker =
          Thread.ofPlatform()
              .name("sluice-memory")
              .daemon(true)
              .start(
                  () -> {
                    while (!closed) {
                      try {
                        Thread.sleep(CHECK_MS);
                        Runnable populate = check();
                        if (populate != null) {
                          // Here, not on the threads that read samples in: backing new memory
                          // costs (zeroing, compaction for huge pages).
                          populate.run();
                        }
                      } catch (InterruptedException e) {
                        return; // closing
                      } catch (RuntimeException e) {
                        LOG.log(Level.WARNING, "memory split: a check failed; next in 250 ms", e);
                      }
                    }
                  });
    }
  }

  /** Bytes of delivery's share the caches hold now. */
  long lentBytes() {
    ReadEngine e = engine;
    return e == null ? 0 : e.lentBytes();
  }

  /**
   * One check: takes a step back when less than half the headroom is free, lends a step when
   * delivery's recent peak and the headroom leave one idle, and otherwise brings the Arrow limit up
   * to date (a job that closed took its loan with it).
   */
  synchronized Runnable check() {
    if (closed || root == null) {
      return null;
    }
    long used = root.getAllocatedMemory();
    recentPeaks[nextPeak] = used;
    nextPeak = (nextPeak + 1) % recentPeaks.length;
    long peak = 0;
    for (long p : recentPeaks) {
      peak = Math.max(peak, p);
    }
    long lent = engine.lentBytes();
    long limit = deliveryBase - lent;
    if (lent > 0 && limit - used < headroom / 2) {
      takeBack(STEP_BYTES);
      return null;
    }
    if (System.nanoTime() - quietUntil >= 0 && limit - peak - headroom >= STEP_BYTES) {
      root.setLimit(limit - STEP_BYTES); // first: the cache may fill the step at once
      if (limit - STEP_BYTES - root.getAllocatedMemory() < headroom) {
        root.setLimit(limit); // batches grew meanwhile
        return null;
      }
      Runnable populate = engine.lendToCaches(STEP_BYTES);
      root.setLimit(deliveryBase - engine.lentBytes());
      if (populate != null) {
        LOG.fine(() -> "lent " + STEP_BYTES + " bytes of delivery memory to a cache");
      }
      return populate;
    }
    root.setLimit(limit);
    return null;
  }

  /**
   * Takes back at least {@code bytes} from the caches and raises the Arrow limit by what came back.
   * Returns whether anything did.
   */
  private boolean takeBack(long bytes) {
    long before = engine.lentBytes();
    if (before == 0) {
      return false;
    }
    quietUntil = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(QUIET_AFTER_SHORT_MS);
    long after = engine.reclaimFromCaches(bytes);
    root.setLimit(deliveryBase - after);
    LOG.fine(() -> "took back " + (before - after) + " bytes of delivery memory from the caches");
    return after < before;
  }

  /**
   * Makes room for {@code bytes} more of delivery memory: takes back from the caches what the Arrow
   * limit lacks, with the headroom on top. True when the room may be there now (try again).
   */
  synchronized boolean makeRoom(long bytes) {
    if (closed || root == null) {
      return false;
    }
    long lent = engine.lentBytes();
    if (root.getLimit() < deliveryBase - lent) {
      root.setLimit(deliveryBase - lent); // a job closed since, its loan with it
      return true;
    }
    if (lent == 0) {
      return false;
    }
    long free = deliveryBase - lent - root.getAllocatedMemory();
    long want = Math.max(STEP_BYTES, bytes - free + headroom);
    return takeBack(want);
  }

  @Override
  public boolean onFailedAllocation(long size, AllocationOutcome outcome) {
    return makeRoom(size);
  }

  @Override
  public void close() {
    closed = true;
    Thread t;
    synchronized (this) {
      t = checker;
    }
    if (t != null) {
      t.interrupt();
      try {
        t.join(TimeUnit.SECONDS.toMillis(5));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
