package io.sluice.server;

import io.sluice.config.ConfigException;
import io.sluice.config.DaemonConfig;
import io.sluice.nativeio.SdNotify;
import io.sluice.peer.PeerException;
import io.sluice.peer.PeerGroup;
import io.sluice.peer.PeerTopology;
import io.sluice.peer.PeerTransport;
import io.sluice.peer.PeerTransports;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.read.ReadBackends;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.flight.FlightServer;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * The per-node daemon: opens the datasets, starts the Flight server (and the metrics endpoint) and
 * owns every resource (allocator, stream threads, open shards). Closing it stops streams and frees
 * everything; a leak makes {@link #close()} fail.
 */
public final class SluiceDaemon implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(SluiceDaemon.class.getName());

  /** Bytes queued per stream before it stops being ready: a few batches in flight. */
  static final int BACKPRESSURE_THRESHOLD_BYTES = 8 << 20;

  /** Smallest memory budget accepted: room for gRPC's buffers and a small batch. */
  public static final long MIN_MEMORY_BUDGET_BYTES = DaemonConfig.MIN_MEMORY_BUDGET_BYTES;

  /** Smallest memory budget with read-ahead: room for one job's cache and scratch buffers. */
  public static final long MIN_READ_AHEAD_BUDGET_BYTES = 256L << 20;

  /** How long running streams get to end, after the daemon stops taking new ones. */
  static final long STREAMS_END_WAIT_MS = 3_000;

  /** How long stream threads get to finish once their calls are cancelled. */
  static final long STREAM_THREADS_WAIT_MS = 4_000;

  /** How long stopped streams get to finish their last write before connections are closed. */
  static final long WRITES_DONE_WAIT_MS = 1_000;

  /** At a stop, how long gRPC's call handlers may take to finish once the connections closed. */
  static final long CALLS_WAIT_MS = 1_000;

  private final DaemonConfig config;
  private final BufferAllocator root;
  private final Storage storage;
  private final Map<String, ServedDataset> datasets;
  private final ExecutorService streams;
  // gRPC's executor for the server's calls: ours, not Flight's, so it outlives the server's
  // shutdown (Flight shuts its own down at once, and every stream that ended after that logged a
  // RejectedExecutionException); shut down once the connections are closed, and waited for
  // before the buffers and caches its calls use go.
  private final ExecutorService calls;
  private final FlightServer server;
  private final SluiceProducer producer;
  private final ReadEngine readEngine;
  private final MemorySplit memory;
  private final FlightTransport transport;
  private final FlightTransport.Loops loops;
  private final ShmDelivery shm;
  private final DaemonMetrics metrics;
  private final PeerGroup peers; // null: a single node
  private MetricsServer metricsServer; // set once, right after construction
  private volatile String stopping; // why /healthz says 503; null while serving
  private final AtomicBoolean closed = new AtomicBoolean();
  private final CountDownLatch stopped = new CountDownLatch(1);

  private SluiceDaemon(
      DaemonConfig config,
      BufferAllocator root,
      Storage storage,
      Map<String, ServedDataset> datasets,
      ExecutorService streams,
      ExecutorService calls,
      FlightServer server,
      SluiceProducer producer,
      ReadEngine readEngine,
      MemorySplit memory,
      FlightTransport transport,
      FlightTransport.Loops loops,
      ShmDelivery shm,
      DaemonMetrics metrics,
      PeerGroup peers) {
    this.memory = memory;
    this.peers = peers;
    this.config = config;
    this.shm = shm;
    this.readEngine = readEngine;
    this.root = root;
    this.storage = storage;
    this.datasets = datasets;
    this.streams = streams;
    this.calls = calls;
    this.server = server;
    this.producer = producer;
    this.transport = transport;
    this.loops = loops;
    this.metrics = metrics;
  }

  /** The read backends in use: posix or io_uring, and s3 when a dataset is in a bucket. */
  public String backendName() {
    return storage.names();
  }

  /** The transport the Flight server runs on: nio or io_uring. */
  public FlightTransport transport() {
    return transport;
  }

  /**
   * Opens every dataset (refusing a bad one with its file and offset named) and starts listening,
   * with no memory budget to speak of (tests and tools).
   *
   * @param port 0 for any free port
   */
  public static SluiceDaemon start(String host, int port, Map<String, Path> datasetPaths)
      throws IOException {
    return start(host, port, datasetPaths, FlightTransport.AUTO, ReadBackends.AUTO);
  }

  /**
   * As {@link #start(String, int, Map)}, on the given transport and read backend ({@code auto},
   * {@code posix} or {@code io_uring}; an explicit choice that is unavailable fails fast).
   */
  public static SluiceDaemon start(
      String host,
      int port,
      Map<String, Path> datasetPaths,
      FlightTransport transportChoice,
      String backendChoice)
      throws IOException {
    return start(host, port, datasetPaths, transportChoice, backendChoice, Long.MAX_VALUE);
  }

  /** As above, within {@code memoryBudgetBytes} (see {@link DaemonConfig.Key#MEMORY_BUDGET}). */
  public static SluiceDaemon start(
      String host,
      int port,
      Map<String, Path> datasetPaths,
      FlightTransport transportChoice,
      String backendChoice,
      long memoryBudgetBytes)
      throws IOException {
    return start(
        DaemonConfig.builder()
            .host(host)
            .port(port)
            .datasets(datasetPaths)
            .transport(transportChoice)
            .backend(backendChoice)
            .memoryBudgetBytes(memoryBudgetBytes)
            .build(),
        PrefetchOptions.defaults());
  }

  /**
   * Starts the daemon {@code config} describes. Its off-heap memory stays inside the memory budget:
   * half for the sample caches and read-ahead buffers (when the budget is at least {@value
   * #MIN_READ_AHEAD_BUDGET_BYTES} bytes; below that streams read on demand), the rest for Arrow
   * buffers (batches being built and queued for the wire, gRPC's receive buffers, shm rings). What
   * delivery leaves idle is lent to an evicting cache and taken back when delivery needs it ({@link
   * MemorySplit}). A batch that does not fit fails its stream with RESOURCE_EXHAUSTED; the other
   * streams go on. shm delivery is off, with the reason logged, when the daemon cannot make its
   * folder under the config's shm_dir.
   */
  public static SluiceDaemon start(DaemonConfig config, PrefetchOptions prefetch)
      throws IOException {
    return start(config, prefetch, new CudaDevices());
  }

  /** As {@link #start(DaemonConfig, PrefetchOptions)}, delivering cuda batches to {@code gpus}. */
  static SluiceDaemon start(DaemonConfig config, PrefetchOptions prefetch, CudaDevices gpus)
      throws IOException {
    quietTransportNoise();
    long memoryBudgetBytes = config.memoryBudgetBytes();
    FlightTransport transport = config.transport().resolve();
    long cacheBudget = memoryBudgetBytes >= MIN_READ_AHEAD_BUDGET_BYTES ? memoryBudgetBytes / 2 : 0;
    MemorySplit memory = new MemorySplit(memoryBudgetBytes - cacheBudget, cacheBudget > 0);
    BufferAllocator root = new RootAllocator(memory, memoryBudgetBytes - cacheBudget);
    Storage storage = Storage.open(config, System.getenv());
    ReadEngine readEngine = null;
    Map<String, ServedDataset> datasets = new LinkedHashMap<>();
    ExecutorService streams =
        Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("sluice-stream-", 0).factory());
    ExecutorService calls =
        Executors.newCachedThreadPool(
            Thread.ofPlatform().name("flight-server-executor-", 0).daemon(true).factory());
    FlightTransport.Loops loops = null;
    ShmDelivery shm = null;
    MetricsServer metricsServer = null;
    PeerGroup peers = null;
    DaemonMetrics metrics = new DaemonMetrics();
    try {
      for (DaemonConfig.Dataset d : config.datasets()) {
        datasets.put(d.name(), storage.open(d));
      }
      BufferAllocator flightAllocator = root.newChildAllocator("flight", 0, Long.MAX_VALUE);
      long bucketDatasets = config.datasets().stream().filter(DaemonConfig.Dataset::isS3).count();
      readEngine =
          new ReadEngine(
              cacheBudget,
              datasets.size(),
              prefetch,
              config.s3().spillDir(),
              config.s3().spillBudgetBytes() / Math.max(1, bucketDatasets));
      memory.start(root, readEngine);
      if (config.peers().enabled()) {
        peers = startPeers(config.peers(), readEngine);
        readEngine.usePeers(peers, config.peers().fetchLocal());
      }
      shm = ShmDelivery.open(config.shmDir(), gpus);
      SluiceProducer producer =
          new SluiceProducer(datasets, root, memory, streams, readEngine, shm, metrics);
      Location location =
          config.tls()
              ? Location.forGrpcTls(config.host(), config.port())
              : Location.forGrpcInsecure(config.host(), config.port());
      FlightServer.Builder builder =
          FlightServer.builder(flightAllocator, location, producer)
              // gRPC calls a stream ready only under 32 KiB queued by default: with batches
              // larger than that every putNext would wait for a flush (one batch per round trip).
              .backpressureThreshold(BACKPRESSURE_THRESHOLD_BYTES)
              .executor(calls);
      if (config.tls()) {
        builder.useTls(config.tlsCert().toFile(), config.tlsKey().toFile());
      }
      if (config.tokens() != null) {
        builder.headerAuthenticator(
            new TokenAuthenticator(
                config.tokens(), () -> metrics.error(DaemonMetrics.ErrorKind.UNAUTHENTICATED)));
      }
      loops = transport.apply(builder);
      FlightServer server = builder.build();
      server.start();
      ReadEngine engine = readEngine;
      ShmDelivery shmDelivery = shm;
      if (config.s3().spillDir() != null) {
        metrics.bindSpill(engine::spillHits);
      }
      if (peers != null) {
        metrics.bindPeers(peers::stats);
      }
      metrics.bindMemoryLent(memory::lentBytes);
      metrics.bind(
          storage.backends(),
          storage.s3Stats(),
          engine::totals,
          engine::failedReadAheads,
          producer::streamsAndLead,
          root::getAllocatedMemory,
          memoryBudgetBytes,
          () -> {
            try {
              return shmDelivery.liveRegions();
            } catch (IOException e) {
              return -1;
            }
          });
      SluiceDaemon daemon =
          new SluiceDaemon(
              config,
              root,
              storage,
              datasets,
              streams,
              calls,
              server,
              producer,
              readEngine,
              memory,
              transport,
              loops,
              shm,
              metrics,
              peers);
      if (config.metricsPort() != DaemonConfig.METRICS_OFF) {
        metricsServer =
            MetricsServer.start(
                config.metricsHost(), config.metricsPort(), metrics.registry(), daemon::health);
        daemon.metricsServer = metricsServer;
      }
      return daemon;
    } catch (IOException | RuntimeException e) {
      if (metricsServer != null) {
        metricsServer.close();
      }
      if (loops != null) {
        loops.close();
      }
      if (shm != null) {
        shm.close();
      }
      streams.shutdownNow();
      calls.shutdownNow();
      if (peers != null) {
        peers.close();
      }
      memory.close();
      if (readEngine != null) {
        readEngine.close();
      }
      for (ServedDataset d : datasets.values()) {
        d.source().close();
      }
      storage.close();
      root.close();
      throw e;
    }
  }

  /**
   * Finds this node's peers (the list, Slurm's environment or DNS), opens the transport and starts
   * lending {@code engine}'s caches. A topology that does not resolve, or an explicit transport
   * that cannot start here, fails the start with the cause.
   */
  private static PeerGroup startPeers(DaemonConfig.Peers p, ReadEngine engine) throws IOException {
    PeerTopology topology;
    try {
      topology = PeerTopology.resolve(p.spec(), p.nodeRank(), p.port(), System.getenv());
    } catch (IllegalArgumentException e) {
      throw new ConfigException("peers=" + p.spec() + ": " + e.getMessage(), e);
    }
    PeerTransport transport;
    try {
      transport = PeerTransports.open(p.transport(), p.timeoutMs());
    } catch (PeerException e) {
      throw new ConfigException("peer.transport=" + p.transport() + ": " + e.getMessage(), e);
    }
    try {
      return PeerGroup.start(
          topology,
          transport,
          engine::lend,
          new PeerGroup.Settings(p.bind(), PEER_RETRY_MS, PEER_RETRY_MS));
    } catch (IOException | RuntimeException e) {
      transport.close();
      throw e;
    }
  }

  /** A dropped path, or a node that failed, is tried again after this long. */
  static final long PEER_RETRY_MS = 5_000;

  /** For the serve line: {@code " peers=node 1/3 over ucx"}, or empty for a single node. */
  public String peersSummary() {
    return peers == null
        ? ""
        : " peers=node "
            + peers.topology().nodeRank()
            + "/"
            + peers.topology().nodeCount()
            + " over "
            + peers.transportName()
            + " on "
            + peers.serving();
  }

  /** The multi-node group, or null for a single node. */
  public PeerGroup peers() {
    return peers;
  }

  /**
   * A trainer killed mid-stream makes gRPC's Netty handler log a WARNING with a stack trace for
   * every write it had queued: routine for a daemon whose clients come and go, and nothing is lost
   * (the stream's buffers are freed, see {@link RankStreamer}). Real failures still log.
   */
  private static void quietTransportNoise() {
    TRANSPORT_LOGGER.setLevel(java.util.logging.Level.SEVERE);
  }

  // Held strongly: java.util.logging keeps loggers weakly and would forget the level.
  private static final java.util.logging.Logger TRANSPORT_LOGGER =
      java.util.logging.Logger.getLogger("io.grpc.netty.NettyServerHandler");

  /**
   * The address clients connect to, for example {@code grpc://127.0.0.1:8815} ({@code
   * grpc+tls://...} with TLS).
   */
  public String uri() {
    Location l = server.getLocation();
    return (config.tls() ? "grpc+tls://" : "grpc://")
        + l.getUri().getHost()
        + ":"
        + server.getPort();
  }

  public int port() {
    return server.getPort();
  }

  public Map<String, ServedDataset> datasets() {
    return datasets;
  }

  /** Bytes of delivery's share of the budget the sample caches hold on loan now. */
  long lentBytes() {
    return memory.lentBytes();
  }

  /** Requests refused as the client's mistake since start. */
  public long rejectedRequests() {
    return producer.rejectedRequests();
  }

  /** The budget the daemon's off-heap memory (caches, read-ahead, Arrow buffers) lives in. */
  public long memoryBudgetBytes() {
    return config.memoryBudgetBytes();
  }

  /**
   * The part of the budget for Arrow buffers (batches being built and queued) now: its half, less
   * what the sample caches hold on loan.
   */
  public long arrowBudgetBytes() {
    return root.getLimit();
  }

  /** Each read-ahead job's counters now. */
  List<ReadEngine.JobStats> readAheadStats() {
    return readEngine.stats();
  }

  /** Bytes the daemon's allocators hold now (batches in flight). */
  public long allocatedBytes() {
    return root.getAllocatedMemory();
  }

  /** Whether streams may take the shm path, and if not, why (null when they may). */
  public String shmUnavailableCause() {
    return shm.unavailabilityCause();
  }

  /** shm region files alive now: one per shm stream still running. */
  public long liveShmRegions() throws IOException {
    return shm.liveRegions();
  }

  /** The metrics endpoint, for example {@code http://127.0.0.1:9815}, or null when it is off. */
  public String metricsUri() {
    MetricsServer m = metricsServer;
    return m == null ? null : "http://" + m.host() + ":" + m.port();
  }

  /** Null while the daemon serves; else why it does not ({@code /healthz} answers 503 with it). */
  String health() {
    return stopping;
  }

  /** Tells systemd (Type=notify) that the daemon serves; nothing when not run by systemd. */
  public void notifyReady() {
    if (!SdNotify.notify("READY=1\nSTATUS=serving " + uri())
        && System.getenv("NOTIFY_SOCKET") != null) {
      LOG.warning(
          "sd_notify READY=1 to NOTIFY_SOCKET="
              + System.getenv("NOTIFY_SOCKET")
              + " failed: a Type=notify unit will time out waiting for it");
    }
  }

  /** Waits until {@link #stopOnSignal()} or {@link #close()} has finished. */
  public void awaitStopped() throws InterruptedException {
    stopped.await();
  }

  /**
   * The graceful stop (SIGTERM, SIGINT): /healthz turns 503, no new stream is taken, each running
   * stream ends at its next step with UNAVAILABLE naming the cursor to resume from (every batch
   * before it was delivered), shm regions are removed and every resource is freed; well inside 10
   * s. Never throws; a second call returns at once.
   */
  public void stopOnSignal() {
    try {
      close();
    } catch (IOException | RuntimeException e) {
      LOG.log(Level.SEVERE, "sluice: stopping: " + e.getMessage(), e);
    }
  }

  private void stopCalls() {
    calls.shutdown();
    try {
      if (!calls.awaitTermination(CALLS_WAIT_MS, TimeUnit.MILLISECONDS)) {
        calls.shutdownNow();
      }
    } catch (InterruptedException e) {
      calls.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  /** The event loops under the Flight server, and the connections they accepted. */
  FlightTransport.Loops loops() {
    return loops;
  }

  @Override
  public void close() throws IOException {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    stopping = "stopping";
    SdNotify.notify("STOPPING=1");
    try {
      server.shutdown(); // no new calls
      producer.stopStreams();
      if (!server.awaitTermination(STREAMS_END_WAIT_MS, TimeUnit.MILLISECONDS)) {
        // Calls still open: a client that stopped reading cannot take its stream's end, and
        // what was queued for it stays in its connection. Once no stream writes any more, close
        // every connection's socket: the clients learn at once, and Netty releases what each
        // connection held, so the streams' drains finish and the server terminates.
        producer.awaitWritesDone(WRITES_DONE_WAIT_MS);
        loops.closeConnections();
      }
      streams.shutdown();
      if (!streams.awaitTermination(STREAM_THREADS_WAIT_MS, TimeUnit.MILLISECONDS)) {
        streams.shutdownNow();
      }
      server.close();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      streams.shutdownNow();
    } finally {
      try {
        if (metricsServer != null) {
          metricsServer.close();
        }
        loops.close();
        stopCalls(); // after the connections: their streams' ends run on it
        shm.close();
        if (peers != null) {
          peers.close(); // no more loans before the caches go
        }
        memory.close();
        readEngine.close();
        for (ServedDataset d : datasets.values()) {
          d.source().close();
        }
        storage.close();
        for (BufferAllocator child : root.getChildAllocators()) {
          child.close();
        }
        root.close(); // throws if any batch buffer leaked
      } finally {
        stopped.countDown();
      }
    }
  }
}
