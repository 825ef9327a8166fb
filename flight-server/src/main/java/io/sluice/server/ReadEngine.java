package io.sluice.server;

import io.sluice.cache.BeladyPolicy;
import io.sluice.cache.Handle;
import io.sluice.cache.NextUse;
import io.sluice.cache.SampleCache;
import io.sluice.client.StreamRequest;
import io.sluice.format.SampleExtents;
import io.sluice.peer.HeldSamples;
import io.sluice.peer.PeerGroup;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.prefetch.PrefetchStats;
import io.sluice.prefetch.Prefetcher;
import io.sluice.prefetch.StreamStats;
import io.sluice.s3.S3ReadBackend;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Logger;

/**
 * The daemon's read-ahead: one {@link Prefetcher} and one {@link SampleCache} per job (a dataset
 * read under one plan family by this node's ranks), sharing the cache budget. Each served dataset
 * may hold {@code cacheBudget / datasets} at once; a job finding too little room first closes jobs
 * no stream uses (kept meanwhile so the next epoch's streams find the samples the plan kept), and
 * otherwise runs without read-ahead, saying so. Thread-safe.
 */
final class ReadEngine implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ReadEngine.class.getName());

  /** Below this a job's cache is not worth having: streams read on demand. */
  static final long MIN_JOB_CACHE_BYTES = 16L << 20;

  /** The longest read-ahead read from an object store. */
  static final int OBJECT_STORE_READ_BYTES = 4 << 20;

  /**
   * The fewest object-store reads in flight the read-ahead may settle on: over a slow link a few
   * large reads fill it, and more only make each one (the next step's included) arrive later.
   */
  static final int OBJECT_STORE_MIN_IN_FLIGHT = 2;

  private final long cacheBudget;
  private final long perDataset;
  private final PrefetchOptions options;
  private final Path spillDir;
  private final long spillPerDataset;
  private final Set<String> spillHeld = new HashSet<>(); // datasets whose spill tier a job holds
  private final StreamStats totals = new StreamStats(); // every stream's batches, for metrics
  private final Map<JobKey, Job> jobs = new LinkedHashMap<>(); // guarded by this
  private long reserved; // cache bytes handed to jobs; guarded by this
  private long retiredFailedReads; // failed read-aheads of jobs closed since; guarded by this
  private long retiredSpillHits; // samples jobs closed since took from their spill tier
  private boolean closed;
  private PeerGroup peers; // null: a single node; guarded by this
  private boolean peerFetchLocal; // local folders take samples from peers too; guarded by this
  private volatile List<Job> lendable = List.of(); // jobs whose caches peers may read

  /**
   * @param cacheBudget off-heap bytes for every job's cache and scratch buffers together; 0 turns
   *     read-ahead off
   */
  ReadEngine(long cacheBudget, int datasets, PrefetchOptions options) {
    this(cacheBudget, datasets, options, null, 0);
  }

  /**
   * @param spillDir where object-store datasets keep a spill tier (file-backed, same eviction), or
   *     null for none
   * @param spillPerDataset the spill tier's bytes for each object-store dataset
   */
  ReadEngine(
      long cacheBudget,
      int datasets,
      PrefetchOptions options,
      Path spillDir,
      long spillPerDataset) {
    this.spillDir = spillDir;
    this.spillPerDataset = spillPerDataset;
    this.cacheBudget = cacheBudget;
    this.perDataset = cacheBudget / Math.max(1, datasets);
    this.options = options;
  }

  /** Hits, misses and stalls of every stream with read-ahead since start. */
  StreamStats.Snapshot totals() {
    return totals.snapshot();
  }

  /** What identifies a job: the plan family, without the epoch (one job spans epochs). */
  record JobKey(
      String dataset, long seed, String shuffle, int worldSize, int batchSize, boolean dropLast) {
    static JobKey of(StreamRequest r) {
      return new JobKey(
          r.dataset(), r.seed(), r.shuffle(), r.worldSize(), r.batchSize(), r.dropLast());
    }
  }

  /** A job's read-ahead and cache. */
  static final class Job {
    final JobKey key;
    final Prefetcher prefetcher;
    final SampleCache cache;
    final long budget;
    final long cacheBytes; // the cache's own share of budget (the rest is read-ahead scratch)
    final String backend;
    final SampleCache spill; // null: none
    final AtomicInteger lent = new AtomicInteger(); // peers' leases on this job's caches
    volatile boolean closing;
    long loan; // delivery memory the cache holds beyond its share; guarded by the engine
    long evictionsSeen; // the cache's evictions and rejections at the last look; ditto

    Job(
        JobKey key,
        Prefetcher prefetcher,
        SampleCache cache,
        long budget,
        long cacheBytes,
        String backend,
        SampleCache spill) {
      this.key = key;
      this.prefetcher = prefetcher;
      this.cache = cache;
      this.budget = budget;
      this.cacheBytes = cacheBytes;
      this.backend = backend;
      this.spill = spill;
    }
  }

  /**
   * The read-ahead consumer for this stream, or null when the dataset's format is read batch by
   * batch (no per-sample extents) or no cache memory is left.
   */
  Prefetcher.Consumer attach(ServedDataset dataset, StreamRequest request, long startStep) {
    if (!(dataset.source() instanceof SampleExtents extents) || cacheBudget == 0) {
      return null;
    }
    Job job = job(dataset, extents, request);
    return job == null
        ? null
        : job.prefetcher.open(request.rank(), request.epoch(), startStep, totals);
  }

  private synchronized Job job(ServedDataset dataset, SampleExtents extents, StreamRequest r) {
    if (closed) {
      return null;
    }
    JobKey key = JobKey.of(r);
    Job job = jobs.get(key);
    if (job != null) {
      return job;
    }
    long room = roomFor(key.dataset());
    PrefetchOptions options = optionsFor(dataset);
    if (room < MIN_JOB_CACHE_BYTES + Prefetcher.scratchBytes(options)) {
      closeIdleJobs();
      room = roomFor(key.dataset());
    }
    long cacheBytes = room - Prefetcher.scratchBytes(options);
    if (cacheBytes < MIN_JOB_CACHE_BYTES) {
      long free = room;
      LOG.info(
          () ->
              "dataset="
                  + key.dataset()
                  + ": no cache memory left for another job ("
                  + Math.max(0, free)
                  + " bytes free of the dataset's share "
                  + perDataset
                  + " and the cache's "
                  + cacheBudget
                  + "; a job needs "
                  + (MIN_JOB_CACHE_BYTES + Prefetcher.scratchBytes(options))
                  + "); this stream reads on demand");
      return null;
    }
    Map<Long, EpochPlan> plans = new ConcurrentHashMap<>();
    java.util.function.LongFunction<EpochPlan> planOf =
        epoch -> {
          if (plans.size() > 8) {
            // The read-ahead asks for this epoch and the next, peers for the one before too.
            // Cleared here, never inside computeIfAbsent, which must not see its map change.
            plans.clear();
          }
          return plans.computeIfAbsent(epoch, e -> plan(dataset, key, e));
        };
    SampleCache cache =
        SampleCache.builder()
            .budgetBytes(cacheBytes)
            .slabBytes(Math.min(SampleCache.DEFAULT_SLAB_BYTES, cacheBytes))
            .policy(new BeladyPolicy((id, step) -> NextUse.NEVER))
            .build();
    SampleCache spill = spillFor(dataset);
    Prefetcher prefetcher;
    try {
      prefetcher =
          new Prefetcher(
              key.dataset() + "-s" + key.seed(),
              extents,
              dataset.source().layout().totalSamples(),
              dataset.backend(),
              cache,
              spill,
              planOf,
              options);
    } catch (RuntimeException e) {
      cache.close();
      closeSpill(key.dataset(), spill);
      throw e;
    }
    job = new Job(key, prefetcher, cache, room, cacheBytes, dataset.backend().name(), spill);
    jobs.put(key, job);
    reserved += room;
    if (peers != null && fetchesFromPeers(dataset)) {
      prefetcher.usePeers(peers.sourceFor(key.dataset(), planOf));
    }
    lendable = List.copyOf(jobs.values());
    return job;
  }

  /**
   * Lets jobs take samples from peer daemons' caches (object stores and network mounts, local
   * folders too when {@code fetchLocal}), and lends this node's caches to them through {@link
   * #lend}. Call once, before streams attach.
   */
  synchronized void usePeers(PeerGroup group, boolean fetchLocal) {
    this.peers = group;
    this.peerFetchLocal = fetchLocal;
  }

  /** Whether reads of {@code dataset} should go to peers first: its storage is remote. */
  private boolean fetchesFromPeers(ServedDataset dataset) {
    if (peerFetchLocal || S3ReadBackend.NAME.equals(dataset.backend().name())) {
      return true;
    }
    Path folder = dataset.dir();
    return folder.getFileSystem() == java.nio.file.FileSystems.getDefault()
        && NetworkMounts.isNetwork(folder, NetworkMounts.PROC_MOUNTS);
  }

  /**
   * A peer's loan of sample {@code id} of {@code dataset} from any job's cache (or spill tier), or
   * null. On the peer transport's threads: lock-free over a snapshot of the jobs; a job that is
   * closing lends nothing and waits for its loans to end before freeing its caches.
   */
  HeldSamples.Lease lend(String dataset, long id) {
    for (Job j : lendable) {
      if (!j.key.dataset().equals(dataset) || j.closing) {
        continue;
      }
      j.lent.incrementAndGet();
      if (j.closing) {
        j.lent.decrementAndGet();
        continue;
      }
      Handle h = j.cache.lend(id);
      if (h == null && j.spill != null) {
        h = j.spill.lend(id);
      }
      if (h == null) {
        j.lent.decrementAndGet();
        continue;
      }
      Handle held = h;
      return new HeldSamples.Lease() {
        private boolean closed;

        @Override
        public MemorySegment bytes() {
          return held.segment();
        }

        @Override
        public synchronized void close() {
          if (!closed) {
            closed = true;
            held.close();
            j.lent.decrementAndGet();
          }
        }
      };
    }
    return null;
  }

  /**
   * Stops {@code j}'s read-ahead and frees its caches; a failure (a leak the cache reports) is
   * logged and the rest still runs, so one job cannot keep the others' memory.
   */
  private void closeJob(Job j) {
    try {
      stopLending(j);
      j.prefetcher.close();
      j.cache.close();
    } catch (RuntimeException e) {
      LOG.log(java.util.logging.Level.SEVERE, "dataset=" + j.key.dataset() + ": closing a job", e);
    } finally {
      closeSpill(j.key.dataset(), j.spill);
    }
  }

  /** Stops lending {@code j}'s caches and waits (briefly) for loans in progress to end. */
  private static void stopLending(Job j) {
    j.closing = true;
    long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(5);
    try {
      while (j.lent.get() > 0 && System.nanoTime() < deadline) {
        Thread.sleep(1); // a loan lasts one copy or one socket write
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (j.lent.get() > 0) {
      LOG.warning(
          () -> "dataset=" + j.key.dataset() + ": " + j.lent.get() + " peer loans still out");
    }
  }

  /**
   * The read-ahead options for {@code dataset}: an object store's requests cost milliseconds each
   * whatever their size, so its reads are coalesced into spans of up to {@value
   * #OBJECT_STORE_READ_BYTES} bytes instead of the local default, and the number in flight may
   * adapt down to {@value #OBJECT_STORE_MIN_IN_FLIGHT}.
   */
  private PrefetchOptions optionsFor(ServedDataset dataset) {
    return S3ReadBackend.NAME.equals(dataset.backend().name())
            && options.maxReadBytes() < OBJECT_STORE_READ_BYTES
        ? options
            .withMaxReadBytes(OBJECT_STORE_READ_BYTES)
            .withInFlight(OBJECT_STORE_MIN_IN_FLIGHT, options.maxInFlight())
        : options;
  }

  /**
   * A spill tier for a job of {@code dataset} when it lives in an object store, a spill folder is
   * set, and no other job of it holds one; null otherwise, or when the folder refuses (logged).
   * Caller holds the lock.
   */
  private SampleCache spillFor(ServedDataset dataset) {
    if (spillDir == null
        || spillPerDataset < MIN_JOB_CACHE_BYTES
        || !S3ReadBackend.NAME.equals(dataset.backend().name())
        || !spillHeld.add(dataset.name())) {
      return null;
    }
    try {
      return SampleCache.builder()
          .budgetBytes(spillPerDataset)
          .slabBytes(Math.min(SampleCache.DEFAULT_SLAB_BYTES, spillPerDataset))
          .policy(new BeladyPolicy((id, step) -> NextUse.NEVER))
          .backingFolder(spillDir)
          .build();
    } catch (IOException | RuntimeException e) {
      spillHeld.remove(dataset.name());
      LOG.warning(
          () -> "dataset=" + dataset.name() + ": no spill tier, reading from the store only: " + e);
      return null;
    }
  }

  private void closeSpill(String dataset, SampleCache spill) {
    if (spill != null) {
      try {
        spill.close();
      } finally {
        spillHeld.remove(dataset);
      }
    }
  }

  /** Cache bytes a new job of {@code dataset} may take: its dataset's share and the pool left. */
  private long roomFor(String dataset) {
    long datasetUse = 0;
    for (Job j : jobs.values()) {
      if (j.key.dataset().equals(dataset)) {
        datasetUse += j.budget;
      }
    }
    return Math.min(perDataset - datasetUse, cacheBudget - reserved);
  }

  private static EpochPlan plan(ServedDataset dataset, JobKey key, long epoch) {
    GlobalSequence sequence =
        GlobalSequence.of(
            dataset.source().layout(),
            key.seed(),
            epoch,
            ShuffleMode.parse(key.shuffle(), SluiceProducer.DEFAULT_BLOCK_SHARDS));
    return EpochPlan.of(sequence, key.worldSize(), key.batchSize(), key.dropLast());
  }

  /** Closes jobs no stream is attached to, freeing their cache memory. Caller holds the lock. */
  private void closeIdleJobs() {
    List<JobKey> idle = new ArrayList<>();
    for (Job j : jobs.values()) {
      if (j.prefetcher.consumerCount() == 0) {
        idle.add(j.key);
      }
    }
    lendable = List.copyOf(jobs.values().stream().filter(j -> !idle.contains(j.key)).toList());
    for (JobKey k : idle) {
      Job j = jobs.remove(k);
      reserved -= j.budget;
      retiredFailedReads += j.prefetcher.stats().failedReads();
      retiredSpillHits += j.prefetcher.stats().spillHits();
      closeJob(j);
    }
  }

  /**
   * Lends {@code bytes} of delivery memory to the cache that would use them: of the jobs with
   * streams attached whose cache has taken its whole budget and evicted or turned samples away
   * since the last look, the one that did so most. Returns the task that backs the lent memory
   * before the cache uses it ({@link SampleCache#growPopulated}), or null when no cache wants more
   * (or none can give memory back).
   */
  synchronized Runnable lendToCaches(long bytes) {
    Job best = null;
    long bestPressure = 0;
    for (Job j : jobs.values()) {
      io.sluice.cache.CacheStats s = j.cache.stats();
      long seen = s.evictions() + s.rejections();
      long pressure = seen - j.evictionsSeen;
      j.evictionsSeen = seen;
      if (closed
          || j.closing
          || j.prefetcher.consumerCount() == 0
          || !j.cache.canShrink()
          || s.slabBytes() < s.budgetBytes()
          || pressure <= bestPressure) {
        continue;
      }
      best = j;
      bestPressure = pressure;
    }
    if (best == null) {
      return null;
    }
    best.loan += bytes;
    Runnable populate = best.cache.growPopulated(best.cacheBytes + best.loan);
    best.prefetcher.cacheResized();
    return populate;
  }

  /**
   * Takes back at least {@code bytes} of what the caches hold on loan (all of it when less is
   * lent), largest loans first: their caches drain slabs, whose memory goes back to the OS at once
   * but for the pages of samples pinned in them. Returns the bytes the caches still hold beyond
   * their shares.
   */
  synchronized long reclaimFromCaches(long bytes) {
    List<Job> lenders = new ArrayList<>(jobs.values());
    lenders.sort((a, b) -> Long.compare(b.loan, a.loan));
    long left = bytes;
    for (Job j : lenders) {
      if (left <= 0 || j.loan == 0) {
        break;
      }
      long take = Math.min(j.loan, left);
      j.loan -= take;
      left -= take;
      j.cache.resize(j.cacheBytes + j.loan);
      j.prefetcher.cacheResized();
    }
    return lentBytes();
  }

  /**
   * Delivery memory the caches hold now: each job's loan, or what its cache still holds beyond its
   * share while draining, whichever is more. Jobs closed since took theirs back with them.
   */
  synchronized long lentBytes() {
    long n = 0;
    for (Job j : jobs.values()) {
      n += Math.max(j.loan, j.cache.heldBytes() - j.cacheBytes);
    }
    return n;
  }

  /** Read-ahead reads that failed since start, closed jobs' included. */
  synchronized long failedReadAheads() {
    long n = retiredFailedReads;
    for (Job j : jobs.values()) {
      n += j.prefetcher.stats().failedReads();
    }
    return n;
  }

  /** Samples read ahead from spill tiers instead of the store since start. */
  synchronized long spillHits() {
    long n = retiredSpillHits;
    for (Job j : jobs.values()) {
      n += j.prefetcher.stats().spillHits();
    }
    return n;
  }

  /** Each job's stats, for logs and the stats action. */
  synchronized List<JobStats> stats() {
    List<JobStats> out = new ArrayList<>();
    for (Job j : jobs.values()) {
      out.add(
          new JobStats(
              j.key, j.backend, j.prefetcher.stats(), j.cache.stats(), j.prefetcher.streams()));
    }
    return out;
  }

  record JobStats(
      JobKey key,
      String backend,
      PrefetchStats.Snapshot prefetch,
      io.sluice.cache.CacheStats cache,
      List<Prefetcher.StreamView> streams) {}

  @Override
  public synchronized void close() {
    closed = true;
    lendable = List.of();
    for (Job j : jobs.values()) {
      closeJob(j);
    }
    jobs.clear();
    reserved = 0;
  }
}
