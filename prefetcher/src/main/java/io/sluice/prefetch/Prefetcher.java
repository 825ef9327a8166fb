package io.sluice.prefetch;

import io.sluice.cache.Handle;
import io.sluice.cache.NextUse;
import io.sluice.cache.Reservation;
import io.sluice.cache.SampleCache;
import io.sluice.format.SampleExtents;
import io.sluice.peer.PeerSource;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.LookAhead;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadFile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongFunction;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Reads a job's samples ahead of its streams into the sample cache, from the plan.
 *
 * <p>A job is one dataset read under one plan family (seed, shuffle, world size, batch size,
 * drop_last) by the node's local ranks; each rank's stream is a {@link Consumer}. Steps are counted
 * across epochs ({@code epoch * stepsPerEpoch + step}) so that one cache and one look-ahead span an
 * epoch boundary. The scheduler thread picks the consumer whose next unread step is nearest (the
 * earliest deadline first), reads that step's samples that are neither cached nor loading, and
 * stops when every consumer is {@code horizonSteps} ahead or {@code windowBytes} are read ahead and
 * not yet consumed. Ranges of one shard close to each other are read as one; a wider gap is read
 * too when every sample in it is needed soon enough to be kept (the plan says when), which turns a
 * block-shuffled epoch into long sequential reads. The number of reads in flight adapts to the
 * backend's latency ({@link InFlightLimit}).
 *
 * <p>The cache evicts by the plan (Belady): samples consumed this epoch are needed farthest away
 * and go first; samples read ahead are needed soonest and stay.
 *
 * <p>A stream never waits on the scheduler: a sample neither cached nor loading when its batch is
 * taken is read on the stream's thread (a miss), and one still loading is waited for (a stall).
 * Read failures during read-ahead are dropped: the stream re-reads the sample and reports the error
 * with the file and offset.
 */
public final class Prefetcher implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Prefetcher.class.getName());

  /** Scratch buffers for coalesced reads, at most this many bytes in all. */
  static final long SCRATCH_BYTES = 64L << 20;

  private static final long IDLE_WAIT_MS = 100;

  /** A stream waits this long for a sample being read ahead, then reads it itself. */
  static final long LOADING_WAIT_SECONDS = 30;

  /**
   * Steps a stream's first batch waits to have in memory before it is handed out, at least (see
   * {@link Consumer#startLead}). An epoch's first reads cannot be ahead of the consumer, and with
   * reads grown to whole chunks the first steps of a shuffle block touch nearly every chunk of the
   * block: without a lead the steps right after the first stall, and so do the next few block
   * boundaries while the lead builds up at the margin between read and consumption rates.
   */
  static final int START_LEAD_STEPS = 16;

  /** The start-up wait ends after this long whatever the lead (a slow device, tiny samples). */
  private static final long START_WAIT_MAX_NANOS = TimeUnit.SECONDS.toNanos(2);

  /** How long the start-up wait goes on without the read-ahead issuing anything new. */
  private static final long START_PATIENCE_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

  /** Steps this close to the slowest stream are read tight first, their neighbours after. */
  static final int NEAR_STEPS = 4;

  /** A waiting scheduler is woken once per this many consumed steps, or sooner when needed. */
  static final int WAKE_EVERY_STEPS = 8;

  private static final long CLOSE_WAIT_NS = TimeUnit.SECONDS.toNanos(10);

  private final String name;
  private final SampleExtents extents;
  private final long totalSamples;
  private final ReadBackend backend;
  private final SampleCache spill; // null: no spill tier
  private final SampleCache cache;
  private final PrefetchOptions options;
  // The longest run of samples not kept that a read crosses (and drops). A local device streams
  // bytes faster than it serves requests: the coalescing gap. An object store's link is scarce
  // and bytes dropped take its time from needed ones: none (a global-shuffled epoch from a
  // 200 Mbit/s store filled 65% of the link with the gap, 78-83% without).
  private final long readThroughBytes;
  private final LongFunction<EpochPlan> plans;
  private final long stepsPerEpoch;
  private final long windowLimit;
  private final long meanSampleBytes;
  private final ExecutorService blockingReads;
  private final ExecutorService completions;
  private final ScratchPool scratch;
  private final InFlightLimit limit;
  private final PrefetchStats stats = new PrefetchStats();

  private final LoadingSamples loading = new LoadingSamples();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition changed = lock.newCondition();
  private final Thread thread;

  // Guarded by lock.
  private final List<Consumer> consumers = new ArrayList<>();
  private final TreeSet<Integer> ranks = new TreeSet<>();
  private long baseEpoch = -1;
  private int[] plannedRanks = {}; // the local ranks of the last replan
  private int inFlight;
  private int peerFetches; // fetches from peers in flight: they write into cache memory
  private long windowBytes;
  private boolean cacheFull;
  private boolean schedulerIdle; // the scheduler waits for a change (guarded by lock)
  private boolean closed;

  private volatile Throwable failure;
  private volatile PeerSource peers; // null: no peers

  /** Samples a peer did not deliver, for the scheduler thread to read from the backend. */
  private final ConcurrentLinkedQueue<List<Part>> fallbacks = new ConcurrentLinkedQueue<>();

  // Written under lock, read by the scheduler without it.
  private volatile NextUse nextUse = (id, step) -> NextUse.NEVER;
  private volatile long keepSteps;
  private volatile long stepBytes; // the local ranks' bytes per step, from the last replan

  /**
   * Starts the scheduler thread.
   *
   * @param name for the thread and logs, for example the dataset's name
   * @param extents where each sample lies (the source's shards, opened on {@code backend})
   * @param totalSamples the dataset's sample count
   * @param cache this job's cache, used by nobody else; the caller closes it after this
   * @param plans the plan of an epoch; every epoch must have the same step count
   */
  public Prefetcher(
      String name,
      SampleExtents extents,
      long totalSamples,
      ReadBackend backend,
      SampleCache cache,
      LongFunction<EpochPlan> plans,
      PrefetchOptions options) {
    this(name, extents, totalSamples, backend, cache, null, plans, options);
  }

  /**
   * As above, with a spill tier: a second cache (file-backed, on local NVMe, {@link
   * SampleCache.Builder#backingFolder}) under the same plan-driven eviction. Every sample read from
   * the backend is offered to it; a read whose samples are all there is served from it instead of
   * the backend. For remote stores, where a local re-read is far cheaper than a GET.
   *
   * @param spill the spill tier, used by nobody else, or null; the caller closes it after this
   */
  public Prefetcher(
      String name,
      SampleExtents extents,
      long totalSamples,
      ReadBackend backend,
      SampleCache cache,
      SampleCache spill,
      LongFunction<EpochPlan> plans,
      PrefetchOptions options) {
    this.spill = spill;
    this.name = name;
    this.extents = extents;
    this.totalSamples = totalSamples;
    this.backend = backend;
    this.cache = cache;
    this.options = options;
    this.readThroughBytes = backend.prefersLargeReads() ? 0 : options.coalesceGapBytes();
    this.plans = plans;
    this.stepsPerEpoch = plans.apply(0).stepCount();
    long cacheBudget = cache.stats().budgetBytes();
    this.windowLimit = Math.max(1, Math.min(options.windowBytes(), cacheBudget / 2));
    long sampleBytes = 0;
    long probes = Math.min(totalSamples, 64);
    for (long i = 0; i < probes; i++) {
      sampleBytes += extents.lengthOf(i * (totalSamples / probes));
    }
    this.meanSampleBytes = Math.max(1, probes == 0 ? 1 : sampleBytes / probes);
    this.blockingReads =
        backend.prefersBatches()
            ? null
            // Platform threads: a FileChannel read pins a virtual thread's carrier, and there
            // are only as many carriers as cores, far fewer than the reads a device wants queued.
            : Executors.newCachedThreadPool(
                Thread.ofPlatform().daemon().name("sluice-read-" + name + "-", 0).factory());
    this.completions =
        Executors.newFixedThreadPool(
            2, Thread.ofPlatform().daemon().name("sluice-complete-" + name + "-", 0).factory());
    this.scratch = new ScratchPool(scratchBuffers(options), options.maxReadBytes());
    this.limit =
        new InFlightLimit(
            options.minInFlight(),
            options.maxInFlight(),
            // 32 reads of 1 MiB; fewer of larger ones (an object store's), which over a slow
            // link would otherwise share it so evenly that the step due next arrives last.
            Math.min(
                options.maxInFlight(),
                Math.max(
                    options.minInFlight(),
                    (int) Math.min(32, (32L << 20) / options.maxReadBytes()))));
    this.thread =
        Thread.ofPlatform().daemon().name("sluice-prefetch-" + name).unstarted(this::schedule);
    thread.start();
  }

  /** Bytes of scratch buffers a prefetcher with these options may hold, beside its cache. */
  public static long scratchBytes(PrefetchOptions options) {
    return scratchBuffers(options) * (long) options.maxReadBytes();
  }

  /** Scratch buffers of {@code maxReadBytes}: one per read in flight, within SCRATCH_BYTES. */
  private static int scratchBuffers(PrefetchOptions options) {
    return (int)
        Math.max(2, Math.min(options.maxInFlight(), SCRATCH_BYTES / options.maxReadBytes()));
  }

  public PrefetchStats.Snapshot stats() {
    lock.lock();
    try {
      return stats.snapshot(inFlight, limit.limit(), windowBytes);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Lets the read-ahead take samples from peer daemons' caches: a sample the plan says a peer
   * consumed last epoch is fetched from it instead of the backend (the backend reads it when the
   * peer does not deliver), and samples a peer will ask this node for are kept over ones nobody
   * needs. Call before streams attach.
   */
  public void usePeers(PeerSource source) {
    lock.lock();
    try {
      this.peers = source;
      if (baseEpoch >= 0) {
        replanLocked(baseEpoch);
      }
    } finally {
      lock.unlock();
    }
  }

  /** What stopped the scheduler thread (a bug: streams then read on demand), or null. */
  public Throwable failure() {
    return failure;
  }

  /** One attached stream's counters. */
  public record StreamView(int rank, long epoch, StreamStats.Snapshot stats) {}

  /** Each attached stream's counters now. */
  public List<StreamView> streams() {
    lock.lock();
    try {
      List<StreamView> out = new ArrayList<>(consumers.size());
      for (Consumer c : consumers) {
        out.add(new StreamView(c.rank, c.epoch, c.streamStats.snapshot()));
      }
      return out;
    } finally {
      lock.unlock();
    }
  }

  /**
   * The cache's budget changed ({@link SampleCache#resize}): from now on the read-ahead keeps as
   * many steps as the cache holds at its new size.
   */
  public void cacheResized() {
    long bytes = stepBytes;
    if (bytes > 0) {
      keepSteps = cache.stats().budgetBytes() / bytes;
    }
  }

  /** Consumers (streams) attached now. */
  public int consumerCount() {
    lock.lock();
    try {
      return consumers.size();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Attaches rank {@code rank}'s stream of epoch {@code epoch}, starting at {@code startStep}: the
   * scheduler starts reading its steps at once.
   */
  public Consumer open(int rank, long epoch, long startStep) {
    return open(rank, epoch, startStep, null);
  }

  /**
   * As {@link #open(int, long, long)}, the stream's counters also adding into {@code totals} (a
   * daemon's counters over every stream, for its metrics; null for none).
   */
  public Consumer open(int rank, long epoch, long startStep, StreamStats totals) {
    EpochPlan plan = plans.apply(epoch);
    if (plan.stepCount() != stepsPerEpoch) {
      throw new IllegalArgumentException(
          "epoch=" + epoch + " has " + plan.stepCount() + " steps, not " + stepsPerEpoch);
    }
    if (epoch < 0 || epoch > Long.MAX_VALUE / Math.max(1, stepsPerEpoch) - 2) {
      throw new IllegalArgumentException("epoch=" + epoch + " is out of range for this plan");
    }
    lock.lock();
    try {
      if (closed) {
        throw new IllegalStateException("prefetcher " + name + " is closed");
      }
      Consumer c = new Consumer(rank, epoch, plan, startStep, totals);
      consumers.add(c);
      boolean newRank = ranks.add(rank);
      long base = minEpochLocked();
      if (newRank || base != baseEpoch) {
        replanLocked(base);
      }
      changed.signalAll();
      return c;
    } finally {
      lock.unlock();
    }
  }

  private long minEpochLocked() {
    long min = Long.MAX_VALUE;
    for (Consumer c : consumers) {
      min = Math.min(min, c.epoch);
    }
    return min == Long.MAX_VALUE ? baseEpoch : min;
  }

  private long minTakenLocked() {
    long min = Long.MAX_VALUE;
    for (Consumer c : consumers) {
      min = Math.min(min, c.taken);
    }
    return min == Long.MAX_VALUE ? cache.currentStep() : min;
  }

  /**
   * The local ranks' next uses over epochs {@code base} and {@code base + 1}, steps counted from
   * the start of epoch 0 ({@code epoch * stepsPerEpoch + step}), so that the next epoch's
   * look-ahead agrees with this one on every use within epoch {@code base + 1}.
   */
  static NextUse nextUses(
      LongFunction<EpochPlan> plans,
      long base,
      int[] localRanks,
      long stepsPerEpoch,
      long totalSamples) {
    LookAhead la = LookAhead.of(plans.apply(base), plans.apply(base + 1), localRanks);
    long offset = base * stepsPerEpoch;
    return (id, step) -> {
      if (id < 0 || id >= totalSamples) {
        return NextUse.NEVER;
      }
      long s = la.nextUseStep(id, Math.max(0, step - offset));
      return s == Long.MAX_VALUE ? NextUse.NEVER : s + offset;
    };
  }

  /** Points the cache's policy and the keep rule at the look-ahead from {@code base}'s epoch. */
  private void replanLocked(long base) {
    int[] local = ranks.stream().mapToInt(Integer::intValue).toArray();
    // Moving on one epoch with the same ranks and no peers, the old look-ahead (epochs base - 1
    // and base) and the new one (base and base + 1) agree on every use within epoch base.
    boolean advance =
        base == baseEpoch + 1
            && baseEpoch >= 0
            && Arrays.equals(local, plannedRanks)
            && peers == null;
    baseEpoch = base;
    plannedRanks = local;
    long offset = base * stepsPerEpoch;
    NextUse use = nextUses(plans, base, local, stepsPerEpoch, totalSamples);
    nextUse = use;
    long stepBytes =
        Math.max(1, (long) local.length * plans.apply(base).batchSize()) * meanSampleBytes;
    // The samples read ahead are among the ones kept, not beside them: the whole cache's worth
    // of steps from the slowest stream. Belady evicts the farthest first if that is too many.
    this.stepBytes = stepBytes;
    cacheResized();
    NextUse kept = use;
    PeerSource p = peers;
    if (p != null) {
      // A sample a peer will ask for next epoch outranks one nobody needs (evicted first), and
      // comes after this node's own uses of that epoch's same step.
      kept =
          (id, step) -> {
            long own = use.nextUseStep(id, step);
            if (own != NextUse.NEVER || id < 0 || id >= totalSamples) {
              return own;
            }
            long epoch = Math.floorDiv(step, stepsPerEpoch);
            long lent = p.lentAtStep(id, epoch);
            return lent < 0 ? NextUse.NEVER : (epoch + 1) * stepsPerEpoch + lent;
          };
    }
    long keptFrom = advance ? offset : 0;
    long keptUntil = advance ? offset + stepsPerEpoch : 0;
    long taken = minTakenLocked();
    cache.replan(kept, taken, keptFrom, keptUntil);
    if (spill != null) {
      spill.replan(kept, taken, keptFrom, keptUntil);
    }
  }

  private void schedule() {
    try {
      while (true) {
        readFallbacks();
        Consumer c;
        long step = -1;
        lock.lock();
        try {
          while (true) {
            if (closed) {
              return;
            }
            c = pickLocked();
            if (c != null) {
              step = c.nextIssue++;
              break;
            }
            if (!fallbacks.isEmpty()) {
              break;
            }
            schedulerIdle = true;
            try {
              changed.await(IDLE_WAIT_MS, TimeUnit.MILLISECONDS);
            } finally {
              schedulerIdle = false;
            }
          }
        } finally {
          lock.unlock();
        }
        if (c == null) {
          continue; // peer fallbacks to read first
        }
        try {
          issueStep(c, step);
        } catch (RuntimeException e) {
          // A bad index entry (a pointer past the shard): the stream meets it on demand and
          // reports it with the file and offset; read-ahead goes on with the next step.
          stats.failedReads.increment();
          long failed = step;
          LOG.log(Level.FINE, e, () -> name + ": could not read ahead step " + failed);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException | Error e) {
      failure = e;
      LOG.log(Level.SEVERE, "prefetcher " + name + " stopped; streams read on demand", e);
    }
  }

  /** The consumer with the nearest unread step within its horizon, or null. */
  private Consumer pickLocked() {
    if (cacheFull || windowBytes >= windowLimit) {
      return null;
    }
    // Never further ahead than half the steps the cache holds: reads around a far step bring in
    // samples needed later still, and the whole lead must fit beside what is being consumed.
    long horizon = Math.min(options.horizonSteps(), Math.max(1, keepSteps / 2));
    Consumer best = null;
    for (Consumer c : consumers) {
      if (c.nextIssue < c.end
          && c.nextIssue < c.taken + horizon
          && (best == null || c.nextIssue < best.nextIssue)) {
        best = c;
      }
    }
    return best;
  }

  /** Reads what step {@code abs} of consumer {@code c} needs and is not cached or loading. */
  private void issueStep(Consumer c, long abs) throws InterruptedException {
    long[] ids = c.issueIds;
    c.plan.fill(c.rank, abs - c.base, ids, null);
    long[] need = ids.clone();
    Arrays.sort(need);
    int distinct = 0;
    for (int i = 0; i < need.length; i++) {
      if (i == 0 || need[i] != need[i - 1]) { // padding repeats a sample within the batch
        need[distinct++] = need[i];
      }
    }
    // The cache first (one lock for the step), then the loading set for what it lacks: most of a
    // step is cached well ahead of its use, and each look-up misses the CPU's caches.
    int uncached = cache.retainUncached(need, distinct);
    int n = 0;
    for (int i = 0; i < uncached; i++) {
      if (!loading.containsKey(need[i])) {
        need[n++] = need[i];
      }
    }
    stats.alreadyCached.add(distinct - uncached);
    long peerBytes = 0;
    PeerSource p = peers;
    if (p != null) {
      long[] taken = new long[1];
      n = fromPeers(p, need, n, abs, taken);
      peerBytes = taken[0];
    }
    long now = minTakenNow();
    // A step far enough ahead is read in whole chunks (the needed samples with the neighbours worth
    // keeping). A step due soon is read tight first, its needed samples alone, and the neighbours
    // after, in reads of their own: the stream gets its batch without waiting for whole chunks,
    // and the device still sees long reads. Where requests cost more than bytes, always chunks.
    boolean roomy = backend.prefersLargeReads() || abs - now >= NEAR_STEPS;
    boolean opening = abs - c.startStep < NEAR_STEPS;
    long bytes = peerBytes + issueSorted(need, n, abs, now, roomy, opening);
    lock.lock();
    try {
      if (c.detached) {
        return; // closed while this step was being read: nothing will consume it
      }
      c.issued.add(new long[] {abs, bytes});
      c.issuedBytes += bytes;
      windowBytes += bytes;
    } finally {
      lock.unlock();
    }
  }

  /**
   * Reads the samples {@code need[0..n)} (ascending, none cached or loading) needed at step {@code
   * abs}: close ones of a shard as one read, in whole chunks with the neighbours worth keeping when
   * {@code roomy}. Returns the needed bytes reserved.
   */
  private long issueSorted(long[] need, int n, long abs, long now, boolean roomy, boolean opening)
      throws InterruptedException {
    long bytes = 0;
    int i = 0;
    while (i < n) {
      long first = need[i];
      int file = extents.fileOf(first);
      long start = extents.offsetOf(first);
      long end = start + extents.lengthOf(first);
      int j = i + 1;
      while (j < n) {
        long id = need[j];
        if (extents.fileOf(id) != file) {
          break;
        }
        long off = extents.offsetOf(id);
        long e = off + extents.lengthOf(id);
        if (e - start > options.maxReadBytes()) {
          break;
        }
        if (off - end > options.coalesceGapBytes()
            && !(roomy && readThrough(need[j - 1] + 1, id, now))) {
          break;
        }
        end = e;
        j++;
      }
      // Read around the range, up to the aligned chunk of maxReadBytes holding it, taking the
      // neighbours needed soon enough to keep and reading through runs of the others (cached,
      // loading, or needed too late) up to readThroughBytes, as between needed samples: a
      // block-shuffled epoch becomes reads of whole chunks, each sample read once. In a global
      // shuffle whose cache holds a good part of the epoch ahead (a first epoch, a dataset a little
      // larger than the cache) about every other neighbour is kept: stopping at the first one that
      // is not made reads of two or three samples, as many requests as a device could serve,
      // where a read through the gaps costs bytes the device streams faster. With a small cache
      // the runs outgrow the gap and the read stays tight; from an object store it always is.
      long max = options.maxReadBytes();
      long gap = readThroughBytes;
      long chunkStart = start / max * max;
      long lo = need[i];
      for (long id = lo - 1;
          id >= 0
              && extents.fileOf(id) == file
              && extents.offsetOf(id) >= chunkStart
              && end - extents.offsetOf(id) <= max;
          id--) {
        if (keepWorthy(id, now)) {
          lo = id;
        } else if (extents.offsetOf(lo) - extents.offsetOf(id) > gap) {
          break;
        }
      }
      long spanStart = extents.offsetOf(lo);
      long hi = need[j - 1] + 1;
      for (long id = hi;
          id < totalSamples
              && extents.fileOf(id) == file
              && extents.offsetOf(id) + extents.lengthOf(id) - spanStart <= max;
          id++) {
        if (keepWorthy(id, now)) {
          hi = id + 1;
        } else if (extents.offsetOf(id)
                + extents.lengthOf(id)
                - extents.offsetOf(hi - 1)
                - extents.lengthOf(hi - 1)
            > gap) {
          break;
        }
      }
      if (roomy) {
        bytes += issueRange(file, need, i, j, lo, hi, abs, now);
      } else {
        bytes += issueRange(file, need, i, j, need[i], need[j - 1] + 1, abs, now);
        // A stream's very first steps: nothing is read yet, so the neighbours wait for the
        // chunk reads of the steps after (which come right behind these tight reads).
        if (!opening && lo < need[i]) {
          issueRange(file, need, i, i, lo, need[i], abs, now);
        }
        if (!opening && hi > need[j - 1] + 1) {
          issueRange(file, need, j, j, need[j - 1] + 1, hi, abs, now);
        }
      }
      i = j;
    }
    return bytes;
  }

  private long minTakenNow() {
    lock.lock();
    try {
      return minTakenLocked();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Whether ids [from, to) are worth one read: the samples there worth keeping are kept, and no run
   * of cached samples or ones needed too late is longer than {@link #readThroughBytes}. Cached
   * samples count as runs to read through, not as kept: once a cache holds most of a chunk, reading
   * across it again brings nothing but the bytes. Loading ones do not break a join: they are a read
   * in flight a moment ahead of this one (a block shuffle's chunk being read), not a lasting state.
   */
  private boolean readThrough(long from, long to, long now) {
    long gap = readThroughBytes;
    long runStart = -1;
    for (long id = from; id < to; id++) {
      if (loading.containsKey(id) || keepWorthy(id, now)) {
        runStart = -1;
        continue;
      }
      long off = extents.offsetOf(id);
      if (runStart < 0) {
        runStart = off;
      }
      if (off + extents.lengthOf(id) - runStart > gap) {
        return false;
      }
    }
    return true;
  }

  /**
   * Not cached or loading, and needed soon enough to be kept if read now ({@link #keptUntil}). The
   * plan is asked first: it is arithmetic, while each map look-up misses the CPU's caches and most
   * neighbours in a global shuffle are not needed soon.
   */
  private boolean keepWorthy(long id, long now) {
    return keptUntil(id, now) != NextUse.NEVER && !loading.containsKey(id) && !cache.holds(id);
  }

  /**
   * The step at which {@code id} is next needed if that is soon enough to keep it and no peer will
   * deliver it then (reading it from the backend as a neighbour would cost the store a read the job
   * saves), else NEVER.
   */
  private long keptUntil(long id, long now) {
    long next = nextUse.nextUseStep(id, now);
    if (next == NextUse.NEVER || next - now > keepSteps) {
      return NextUse.NEVER;
    }
    PeerSource p = peers;
    return p == null || p.holderOf(id, next / stepsPerEpoch) < 0 ? next : NextUse.NEVER;
  }

  /**
   * Reserves cache memory for needed samples {@code need[i..j)} (one shard, close together) and for
   * the other samples of ids {@code [lo, hi)} worth keeping, then reads their whole span as one
   * read. Returns the needed bytes reserved.
   */
  private long issueRange(
      int file, long[] need, int i, int j, long lo, long hi, long step, long now)
      throws InterruptedException {
    List<Part> parts = new ArrayList<>(j - i);
    long neededBytes = 0;
    int k = i;
    try {
      for (long id = lo; id < hi; id++) {
        if (k < j && need[k] == id) {
          k++;
          if (reserve(id, parts, step, true)) {
            neededBytes += extents.lengthOf(id);
          }
        } else {
          long next = keptUntil(id, now);
          if (next != NextUse.NEVER && reserve(id, parts, next, false)) {
            stats.neighboursKept.increment();
          }
        }
      }
    } catch (RuntimeException e) {
      for (Part p : parts) {
        p.reservation.close();
      }
      throw e;
    }
    if (parts.isEmpty()) {
      return 0;
    }
    for (Part p : parts) {
      loading.put(p.id, p.done);
    }
    // A layout whose ids do not follow the file order (possible in a hand-built index): never
    // join what the format does not place side by side.
    List<List<Part>> reads =
        inOneSpan(parts) ? List.of(parts) : parts.stream().map(List::of).toList();
    for (int r = 0; r < reads.size(); r++) {
      try {
        submit(file, reads.get(r));
      } catch (RuntimeException | InterruptedException e) {
        // Not submitted: give these samples up, or a stream would wait for them forever.
        for (int q = r; q < reads.size(); q++) {
          abandon(reads.get(q));
        }
        throw e;
      }
    }
    return neededBytes;
  }

  /** Whether the parts lie in ascending, non-overlapping order within one read's length. */
  private boolean inOneSpan(List<Part> parts) {
    long end = Long.MIN_VALUE;
    for (Part p : parts) {
      if (p.offset < end) {
        return false;
      }
      end = p.offset + p.reservation.segment().byteSize();
    }
    return end - parts.getFirst().offset <= options.maxReadBytes();
  }

  /**
   * Starts fetching from peers the samples of {@code need[0..n)} (ascending) that the plan says a
   * peer holds, one fetch per peer, and returns how many of {@code need} are left for the backend
   * (compacted to the front). {@code bytes[0]} gets the bytes reserved for the fetches.
   */
  private int fromPeers(PeerSource p, long[] need, int n, long abs, long[] bytes) {
    long epoch = abs / stepsPerEpoch;
    Map<Integer, List<Part>> byNode = new HashMap<>();
    int left = 0;
    try {
      for (int i = 0; i < n; i++) {
        long id = need[i];
        int node = p.holderOf(id, epoch);
        if (node < 0) {
          need[left++] = id;
          continue;
        }
        List<Part> parts = byNode.computeIfAbsent(node, k -> new ArrayList<>());
        if (reserve(id, parts, abs, true)) {
          loading.put(id, parts.getLast().done);
          bytes[0] += extents.lengthOf(id);
        }
      }
    } catch (RuntimeException e) {
      for (List<Part> parts : byNode.values()) {
        abandon(parts); // reserved, not asked for: the streams read them on demand
      }
      throw e;
    }
    for (Map.Entry<Integer, List<Part>> e : byNode.entrySet()) {
      List<Part> parts = e.getValue();
      if (parts.isEmpty()) {
        continue;
      }
      long[] ids = new long[parts.size()];
      MemorySegment[] dsts = new MemorySegment[parts.size()];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = parts.get(i).id;
        dsts[i] = parts.get(i).reservation.segment();
      }
      lock.lock();
      try {
        peerFetches++;
      } finally {
        lock.unlock();
      }
      CompletableFuture<boolean[]> fetch;
      try {
        fetch = p.fetch(e.getKey(), ids, dsts);
      } catch (RuntimeException x) {
        fetch = CompletableFuture.failedFuture(x); // a transport that threw: storage reads them
      }
      fetch.whenComplete(
          (filled, error) -> {
            try {
              completions.execute(() -> completePeerFetch(parts, error == null ? filled : null));
            } catch (java.util.concurrent.RejectedExecutionException closing) {
              completePeerFetch(parts, error == null ? filled : null);
            }
          });
    }
    return left;
  }

  /**
   * Publishes what a peer delivered; queues the rest for the backend. The transport writes nothing
   * into a fetch's destinations once its future completed, so a failed or timed-out fetch's
   * reservations are safe to read into.
   */
  private void completePeerFetch(List<Part> parts, boolean[] filled) {
    try {
      publishPeerFetch(parts, filled);
    } finally {
      lock.lock();
      try {
        peerFetches--;
        changed.signalAll();
      } finally {
        lock.unlock();
      }
    }
  }

  private void publishPeerFetch(List<Part> parts, boolean[] filled) {
    List<Part> rest = new ArrayList<>();
    for (int i = 0; i < parts.size(); i++) {
      Part p = parts.get(i);
      if (filled == null || !filled[i]) {
        rest.add(p);
        continue;
      }
      try {
        p.reservation.commit();
        stats.peerHits.increment();
        stats.peerBytes.add(p.reservation.segment().byteSize());
      } catch (RuntimeException e) {
        // the cache closed under us: the stream reads it on demand
      } finally {
        p.reservation.close();
        loading.remove(p.id, p.done);
        p.done.complete(null);
      }
    }
    if (!rest.isEmpty()) {
      stats.peerFallbacks.add(rest.size());
      lock.lock();
      try {
        if (closed) {
          abandon(rest); // streams still attached read them on demand
        } else {
          fallbacks.add(rest);
        }
      } finally {
        lock.unlock();
      }
    }
  }

  /**
   * On the scheduler thread: reads from the backend what peers did not deliver, side-by-side
   * samples of a shard together. Their reservations and loading entries are still held.
   */
  private void readFallbacks() throws InterruptedException {
    List<Part> parts;
    while ((parts = fallbacks.poll()) != null) {
      List<Part> sorted = new ArrayList<>(parts);
      sorted.sort(
          Comparator.<Part>comparingInt(x -> extents.fileOf(x.id))
              .thenComparingLong(x -> x.offset));
      int i = 0;
      while (i < sorted.size()) {
        int file = extents.fileOf(sorted.get(i).id);
        long start = sorted.get(i).offset;
        int j = i + 1;
        while (j < sorted.size()
            && extents.fileOf(sorted.get(j).id) == file
            && sorted.get(j).offset
                >= sorted.get(j - 1).offset + extents.lengthOf(sorted.get(j - 1).id)
            && sorted.get(j).offset + extents.lengthOf(sorted.get(j).id) - start
                <= options.maxReadBytes()) {
          j++;
        }
        List<Part> read = sorted.subList(i, j);
        try {
          submit(file, new ArrayList<>(read));
        } catch (RuntimeException e) {
          abandon(read);
          LOG.log(Level.FINE, e, () -> name + ": could not read what a peer did not deliver");
        }
        i = j;
      }
    }
  }

  private void advanceCaches(long step) {
    cache.advanceTo(step);
    if (spill != null) {
      spill.advanceTo(step);
    }
  }

  /**
   * Fills every part from the spill tier when all of them are there (a read of the rest alone would
   * cost as much as the whole span); false, with nothing done, otherwise.
   */
  private boolean fromSpill(List<Part> parts) {
    Handle[] pinned = new Handle[parts.size()];
    try {
      for (int i = 0; i < pinned.length; i++) {
        pinned[i] = spill.pin(parts.get(i).id);
        if (pinned[i] == null) {
          return false;
        }
      }
      for (int i = 0; i < pinned.length; i++) {
        Part p = parts.get(i);
        try {
          MemorySegment dst = p.reservation.segment();
          MemorySegment.copy(pinned[i].segment(), 0, dst, 0, dst.byteSize());
          p.reservation.commit();
          stats.spillHits.increment();
        } finally {
          p.reservation.close();
          loading.remove(p.id, p.done);
          p.done.complete(null);
        }
      }
      return true;
    } finally {
      for (Handle h : pinned) {
        if (h != null) {
          h.close();
        }
      }
    }
  }

  /** Reads the span of {@code parts} (one, or several side by side) as one read. */
  private void submit(int file, List<Part> parts) throws InterruptedException {
    if (spill != null && fromSpill(parts)) {
      return;
    }
    long start = parts.getFirst().offset;
    Part last = parts.getLast();
    long end = last.offset + last.reservation.segment().byteSize();
    int length = (int) (end - start);
    ByteBuffer target;
    ByteBuffer buffer = null;
    boolean slot = false;
    CompletableFuture<Void> read;
    long issued;
    try {
      if (parts.size() == 1) {
        target = parts.getFirst().reservation.segment().asByteBuffer();
      } else {
        buffer = scratch.take();
        target = buffer.clear().limit(length);
      }
      acquireInFlight();
      slot = true;
      ReadFile rf = extents.file(file);
      issued = System.nanoTime();
      if (blockingReads == null) {
        read = backend.readAsync(rf, start, target);
      } else {
        ByteBuffer t = target;
        read =
            CompletableFuture.runAsync(
                () -> {
                  try {
                    rf.readFully(start, t);
                  } catch (IOException e) {
                    throw new UncheckedIOException(e);
                  }
                },
                blockingReads);
      }
    } catch (RuntimeException | InterruptedException e) {
      if (buffer != null) {
        scratch.give(buffer);
      }
      if (slot) {
        releaseSlot();
      }
      throw e;
    }
    ByteBuffer scratchBuffer = buffer;
    // Copying a coalesced read out (or into the spill tier) and committing its samples takes a
    // while: never on the ring thread, which would stop reaping and submitting every other read.
    if (blockingReads == null && (buffer != null || spill != null)) {
      read.whenCompleteAsync(
          (v, error) -> completeRange(parts, scratchBuffer, start, length, issued, error),
          completions);
    } else {
      read.whenComplete(
          (v, error) -> completeRange(parts, scratchBuffer, start, length, issued, error));
    }
    stats.reads.increment();
    if (parts.size() > 1) {
      stats.coalescedReads.increment();
    }
  }

  /** Gives up samples whose read was never submitted: streams will read them on demand. */
  private void abandon(List<Part> parts) {
    for (Part p : parts) {
      p.reservation.close();
      loading.remove(p.id, p.done);
      p.done.complete(null);
    }
  }

  private void releaseSlot() {
    lock.lock();
    try {
      inFlight--;
      changed.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Reserves room for {@code id}, needed at {@code useStep}, evicting nothing needed sooner; false
   * when it is cached, loading, or does not fit.
   */
  private boolean reserve(long id, List<Part> parts, long useStep, boolean needed) {
    if (loading.containsKey(id)) {
      return false;
    }
    Reservation r = cache.reserveBefore(id, extents.lengthOf(id), useStep);
    if (r == null) {
      if (needed && !cache.holds(id)) {
        stats.rejected.increment();
        lock.lock();
        try {
          cacheFull = true; // wait for a stream to consume before reading more
        } finally {
          lock.unlock();
        }
      }
      return false;
    }
    parts.add(new Part(id, extents.offsetOf(id), r));
    return true;
  }

  private void acquireInFlight() throws InterruptedException {
    lock.lock();
    try {
      if (inFlight >= limit.limit()) {
        limit.onBlocked();
      }
      while (inFlight >= limit.limit()) {
        changed.await(IDLE_WAIT_MS, TimeUnit.MILLISECONDS);
      }
      inFlight++;
    } finally {
      lock.unlock();
    }
  }

  /** On the backend's completion thread: publish or drop the samples, free the scratch buffer. */
  private void completeRange(
      List<Part> parts, ByteBuffer buffer, long start, int length, long issued, Throwable error) {
    long latency = System.nanoTime() - issued;
    try {
      MemorySegment span =
          buffer == null ? null : MemorySegment.ofBuffer(buffer.duplicate().clear());
      for (Part p : parts) {
        try {
          if (error == null) {
            MemorySegment dst = p.reservation.segment();
            if (span != null) {
              MemorySegment.copy(span, p.offset - start, dst, 0, dst.byteSize());
            }
            // Spilled before the commit, while dst is reserved: once committed and unpinned, it
            // may be evicted and refilled by another read before the copy out of it ends.
            if (spill != null && spill.put(p.id, dst)) {
              stats.spilled.increment();
            }
            p.reservation.commit();
          }
        } catch (RuntimeException e) {
          error = error == null ? e : error; // the cache closed under us: drop the rest
        } finally {
          p.reservation.close();
          loading.remove(p.id, p.done);
          p.done.complete(null);
        }
      }
      if (error == null) {
        stats.bytesRead.add(length);
        stats.samplesRead.add(parts.size());
        stats.readNanos.add(latency);
        limit.onComplete();
      } else {
        stats.failedReads.increment();
        Throwable cause = error instanceof CompletionException ce ? ce.getCause() : error;
        LOG.log(
            Level.FINE, () -> name + ": read-ahead failed, streams will read on demand: " + cause);
      }
    } finally {
      if (buffer != null) {
        scratch.give(buffer);
      }
      releaseSlot();
    }
  }

  /**
   * Stops reading ahead and waits for reads in flight (they write into the cache and scratch
   * memory). Consumers still attached keep working, reading on demand. Idempotent.
   */
  @Override
  public void close() {
    lock.lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      changed.signalAll();
    } finally {
      lock.unlock();
    }
    try {
      thread.join(TimeUnit.NANOSECONDS.toMillis(CLOSE_WAIT_NS));
      long deadline = System.nanoTime() + CLOSE_WAIT_NS;
      lock.lock();
      try {
        while ((inFlight > 0 || peerFetches > 0) && System.nanoTime() < deadline) {
          changed.await(IDLE_WAIT_MS, TimeUnit.MILLISECONDS);
        }
        if (inFlight > 0 || peerFetches > 0) {
          LOG.severe(
              name
                  + ": "
                  + inFlight
                  + " reads, "
                  + peerFetches
                  + " peer fetches still in flight after close");
        }
      } finally {
        lock.unlock();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    List<Part> undelivered;
    while ((undelivered = fallbacks.poll()) != null) {
      abandon(undelivered);
    }
    if (blockingReads != null) {
      blockingReads.shutdown();
    }
    completions.shutdown();
  }

  private record Part(long id, long offset, Reservation reservation, CompletableFuture<Void> done) {
    Part(long id, long offset, Reservation reservation) {
      this(id, offset, reservation, new CompletableFuture<>());
    }
  }

  /** One rank's stream of one epoch. Used by one thread at a time. */
  public final class Consumer implements AutoCloseable {
    private final int rank;
    private final long epoch;
    private final EpochPlan plan;
    private final long base;
    private final long end;
    private final long startStep;
    private final long[] issueIds;
    private final StreamStats streamStats;

    // Guarded by the prefetcher's lock.
    private long nextIssue;
    private long taken;
    private final ArrayDeque<long[]> issued = new ArrayDeque<>();
    private long issuedBytes;
    private boolean first = true;
    private boolean detached;
    private int unwoken; // steps consumed since this consumer last woke the scheduler

    private Consumer(int rank, long epoch, EpochPlan plan, long startStep, StreamStats totals) {
      this.streamStats = new StreamStats(totals);
      this.rank = rank;
      this.epoch = epoch;
      this.plan = plan;
      this.base = epoch * stepsPerEpoch;
      this.end = base + plan.stepCount();
      this.issueIds = new long[plan.batchSize()];
      long start = base + Math.max(0, Math.min(startStep, plan.stepCount()));
      this.nextIssue = start;
      this.taken = start;
      this.startStep = start;
    }

    public StreamStats stats() {
      return streamStats;
    }

    /**
     * The samples of this rank's step {@code step} ({@code ids[0..count)}, from the plan), in
     * memory: cached ones pinned, loading ones waited for (a stall), others read here (a miss and a
     * stall). Close the batch when its bytes are copied out.
     */
    public Batch take(long step, long[] ids, int count) throws IOException {
      long abs = base + step;
      lock.lock();
      try {
        streamStats.lead(Math.max(nextIssue, abs) - abs);
        // In step, the previous batch's close already said all this: no need to wake the
        // scheduler once more (each wake-up costs it a pass over the consumers).
        if (taken != abs || nextIssue < abs) {
          taken = abs;
          if (nextIssue < abs) {
            nextIssue = abs; // the stream skipped ahead (resume): do not read what it skipped
          }
          releaseLocked(abs);
          advanceCaches(minTakenLocked());
          changed.signalAll();
        }
      } finally {
        lock.unlock();
      }
      MemorySegment[] bytes = new MemorySegment[count];
      Handle[] handles = new Handle[count];
      Arena missArena = null;
      long waited = startLead(abs);
      int hits = 0;
      int misses = 0;
      try {
        // Everything already cached in one go (one lock), then what is loading (waited for),
        // then the misses: all in flight at once where the backend prefers it (an object store:
        // one request each), else one by one.
        hits = cache.pinCached(ids, count, handles);
        int[] missing = new int[count];
        int missCount = 0;
        for (int i = 0; i < count; i++) {
          if (handles[i] != null) {
            bytes[i] = handles[i].segment();
            continue;
          }
          long id = ids[i];
          if (!cache.contains(id)) {
            CompletableFuture<Void> f = loading.get(id);
            if (f != null) {
              long t = System.nanoTime();
              awaitLoading(f, id);
              waited += System.nanoTime() - t;
            }
          }
          Handle h = cache.pin(id);
          if (h != null) {
            handles[i] = h;
            bytes[i] = h.segment();
            hits++;
            continue;
          }
          missing[missCount++] = i;
        }
        if (missCount > 0) {
          long t = System.nanoTime();
          misses = missCount;
          if (backend.prefersLargeReads()) {
            readMissesAsChunks(ids, missing, missCount, abs, handles, bytes);
          } else if (backend.prefersBatches() && missCount > 1) {
            readMissesTogether(ids, missing, missCount, handles, bytes);
          }
          for (int k = 0; k < missCount; k++) {
            int i = missing[k];
            if (bytes[i] != null) {
              continue;
            }
            long id = ids[i];
            Handle h = readIntoCache(id);
            if (h != null) {
              handles[i] = h;
              bytes[i] = h.segment();
            } else {
              if (missArena == null) {
                missArena = Arena.ofConfined();
              }
              MemorySegment m = missArena.allocate(extents.lengthOf(id), 64);
              extents.readSample(id, m.asByteBuffer());
              bytes[i] = m;
            }
          }
          waited += System.nanoTime() - t;
        }
      } catch (IOException | RuntimeException e) {
        release(handles, missArena);
        throw e;
      }
      boolean wasFirst;
      lock.lock();
      try {
        wasFirst = first;
        first = false;
      } finally {
        lock.unlock();
      }
      streamStats.batch(hits, misses, waited, wasFirst);
      return new Batch(this, abs, bytes, handles, missArena);
    }

    /**
     * On the stream's first take only: waits until this stream's share of half the read-ahead
     * window (and at least {@link #START_LEAD_STEPS} steps, within the horizon) is in memory, so
     * the trainer starts with a lead that carries it over the next block boundaries. Ends early
     * when the read-ahead has issued nothing new for a while (its window is full, or it failed) and
     * after {@link #START_WAIT_MAX_NANOS} at most; returns the nanoseconds waited.
     */
    private long startLead(long abs) throws IOException {
      long horizon;
      long leadBytes;
      lock.lock();
      try {
        if (!first || failure != null) {
          return 0;
        }
        horizon = Math.min(options.horizonSteps(), Math.max(1, keepSteps / 2));
        leadBytes = windowLimit / 2 / Math.max(1, consumers.size());
      } finally {
        lock.unlock();
      }
      long t0 = System.nanoTime();
      long last = Math.min(end, abs + horizon);
      long[] stepIds = new long[plan.batchSize()];
      long progressAt = t0;
      long seenIssue = -1;
      long bytes = 0;
      for (long s = abs; s < last && (s < abs + START_LEAD_STEPS || bytes < leadBytes); s++) {
        if (System.nanoTime() - t0 > START_WAIT_MAX_NANOS) {
          break;
        }
        plan.fill(rank, s - base, stepIds, null);
        for (int i = 0; i < stepIds.length; i++) {
          long id = stepIds[i];
          bytes += extents.lengthOf(id);
          while (!cache.contains(id)) {
            CompletableFuture<Void> f = loading.get(id);
            if (f != null) {
              awaitLoading(f, id);
              progressAt = System.nanoTime();
              continue;
            }
            long issue;
            lock.lock();
            try {
              issue = nextIssue;
            } finally {
              lock.unlock();
            }
            if (issue > s) {
              break; // issued and neither loading nor cached: given up, the take reads it
            }
            long now = System.nanoTime();
            if (issue != seenIssue) {
              seenIssue = issue;
              progressAt = now;
            } else if (now - progressAt > START_PATIENCE_NANOS || now - t0 > START_WAIT_MAX_NANOS) {
              return now - t0; // the read-ahead is not getting there: start anyway
            }
            LockSupport.parkNanos(200_000);
          }
        }
      }
      return System.nanoTime() - t0;
    }

    void releaseBatch(Handle[] handles, Arena missArena) {
      release(handles, missArena);
    }

    /**
     * Waits for a read-ahead of {@code id} (its future completes normally even when the read
     * fails). A read that never completes would be a bug; the stream does not hang on it but reads
     * the sample itself after {@value #LOADING_WAIT_SECONDS} s, saying so.
     */
    private void awaitLoading(CompletableFuture<Void> f, long id) throws IOException {
      try {
        f.get(LOADING_WAIT_SECONDS, TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        LOG.warning(
            name
                + ": read-ahead of sample_id="
                + id
                + " did not finish in "
                + LOADING_WAIT_SECONDS
                + " s; reading it on demand");
      } catch (ExecutionException e) {
        // not thrown: the future completes normally
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted waiting for sample_id=" + id);
      }
    }

    /**
     * Where requests cost more than bytes: the missed samples go through the read-ahead's own path
     * (whole chunks, the neighbours worth keeping kept), on this thread, and are waited for. One
     * GET per missed sample would make a stream that caught up with the read-ahead on a slow link
     * request-bound for good. What still misses is left unset for the one-by-one path.
     */
    private void readMissesAsChunks(
        long[] ids, int[] missing, int n, long abs, Handle[] handles, MemorySegment[] bytes)
        throws IOException {
      long[] need = new long[n];
      for (int k = 0; k < n; k++) {
        need[k] = ids[missing[k]];
      }
      Arrays.sort(need);
      int m = 0;
      for (int k = 0; k < n; k++) {
        if ((k == 0 || need[k] != need[k - 1]) && !loading.containsKey(need[k])) {
          need[m++] = need[k];
        }
      }
      try {
        issueSorted(need, cache.retainUncached(need, m), abs, minTakenNow(), true, false);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted reading step " + abs);
      }
      for (int k = 0; k < n; k++) {
        int i = missing[k];
        long id = ids[i];
        CompletableFuture<Void> f = loading.get(id);
        if (f != null) {
          awaitLoading(f, id);
        }
        Handle h = cache.pin(id);
        if (h != null) {
          handles[i] = h;
          bytes[i] = h.segment();
        }
      }
    }

    /**
     * Reads the missed samples {@code ids[missing[0..n)]} into the cache with every read in flight
     * at once, and pins them. A sample that does not fit the cache, or whose read fails, is left
     * unset for the one-by-one path (which then reports a failure as the format words it).
     */
    private void readMissesTogether(
        long[] ids, int[] missing, int n, Handle[] handles, MemorySegment[] bytes) {
      Reservation[] rs = new Reservation[n];
      List<CompletableFuture<Void>> reads = new ArrayList<>(n);
      try {
        for (int k = 0; k < n; k++) {
          long id = ids[missing[k]];
          rs[k] = cache.reserve(id, extents.lengthOf(id));
          CompletableFuture<Void> read = null;
          if (rs[k] != null) {
            try {
              read =
                  backend.readAsync(
                      extents.file(extents.fileOf(id)),
                      extents.offsetOf(id),
                      rs[k].segment().asByteBuffer());
            } catch (RuntimeException e) {
              // Not submitted (a backend that could not take it): the one-by-one path reads it.
              read = CompletableFuture.failedFuture(e);
            }
          }
          reads.add(read);
        }
        for (int k = 0; k < n; k++) {
          if (reads.get(k) == null) {
            continue;
          }
          try {
            reads.get(k).join(); // the buffer is the read's until then, failed or not
          } catch (CompletionException | java.util.concurrent.CancellationException e) {
            rs[k].close();
            rs[k] = null;
            continue;
          }
          rs[k].commit();
          rs[k].close();
          rs[k] = null;
          int i = missing[k];
          Handle h = cache.pin(ids[i]);
          if (h != null) {
            handles[i] = h;
            bytes[i] = h.segment();
          }
        }
      } finally {
        for (int k = 0; k < n; k++) {
          if (rs[k] != null) {
            if (k < reads.size() && reads.get(k) != null) {
              reads.get(k).exceptionally(e -> null).join();
            }
            rs[k].close();
          }
        }
      }
    }

    /**
     * Reads a sample the read-ahead did not bring into the cache (so the policy may keep it for a
     * later use) and pins it; null when the cache has no room or another thread is loading it.
     */
    private Handle readIntoCache(long id) throws IOException {
      try (Reservation r = cache.reserve(id, extents.lengthOf(id))) {
        if (r == null) {
          return null;
        }
        extents.readSample(id, r.segment().asByteBuffer());
        r.commit();
      }
      return cache.pin(id);
    }

    /** Drops the bookkeeping of steps before {@code abs}: consumed or skipped. */
    private void releaseLocked(long abs) {
      while (!issued.isEmpty() && issued.peekFirst()[0] < abs) {
        long bytes = issued.pollFirst()[1];
        issuedBytes -= bytes;
        windowBytes -= bytes;
        cacheFull = false;
      }
    }

    private void consumed(long abs) {
      lock.lock();
      try {
        boolean wasFull = cacheFull;
        taken = Math.max(taken, abs + 1);
        releaseLocked(abs + 1);
        cacheFull = false;
        advanceCaches(minTakenLocked());
        // Wake the scheduler only when it waits, and then every few steps unless the lead runs
        // short: waking it on every step cost the stream a context switch per batch (a busy
        // scheduler looks at the consumers again before it waits anyway).
        if (schedulerIdle
            && (wasFull || ++unwoken >= WAKE_EVERY_STEPS || nextIssue - taken < WAKE_EVERY_STEPS)) {
          unwoken = 0;
          changed.signalAll();
        }
      } finally {
        lock.unlock();
      }
    }

    /** Detaches the stream: its read-ahead stops and stops counting against the window. */
    @Override
    public void close() {
      lock.lock();
      try {
        if (detached) {
          return;
        }
        detached = true;
        consumers.remove(this);
        windowBytes -= issuedBytes;
        issuedBytes = 0;
        issued.clear();
        cacheFull = false;
        long base = minEpochLocked();
        if (!consumers.isEmpty() && base > baseEpoch) {
          replanLocked(base);
        }
        changed.signalAll();
      } finally {
        lock.unlock();
      }
    }
  }

  private void release(Handle[] handles, Arena missArena) {
    cache.releaseAll(handles);
    if (missArena != null) {
      missArena.close();
    }
  }

  /** A taken step's sample bytes; closing it unpins them and counts the step consumed. */
  public static final class Batch implements AutoCloseable {
    private final Consumer consumer;
    private final long abs;
    private final MemorySegment[] bytes;
    private final Handle[] handles;
    private final Arena missArena;
    private boolean closed;

    private Batch(
        Consumer consumer, long abs, MemorySegment[] bytes, Handle[] handles, Arena missArena) {
      this.consumer = consumer;
      this.abs = abs;
      this.bytes = bytes;
      this.handles = handles;
      this.missArena = missArena;
    }

    /** {@code bytes()[i]} holds sample {@code ids[i]}; valid until {@link #close()}. */
    public MemorySegment[] bytes() {
      return bytes;
    }

    @Override
    public void close() {
      if (closed) {
        return;
      }
      closed = true;
      consumer.releaseBatch(handles, missArena);
      consumer.consumed(abs);
    }
  }

  /** Aligned direct buffers of one size for coalesced reads, handed out one per read. */
  private static final class ScratchPool {
    private final int capacity;
    private final int bufferBytes;
    private final ArrayDeque<ByteBuffer> free = new ArrayDeque<>();
    private int created;

    ScratchPool(int capacity, int bufferBytes) {
      this.capacity = capacity;
      this.bufferBytes = bufferBytes;
    }

    synchronized ByteBuffer take() throws InterruptedException {
      while (free.isEmpty() && created >= capacity) {
        wait();
      }
      if (!free.isEmpty()) {
        return free.pop();
      }
      created++;
      return ByteBuffer.allocateDirect(bufferBytes + 4096).alignedSlice(4096);
    }

    synchronized void give(ByteBuffer b) {
      free.push(b);
      notifyAll();
    }
  }
}
