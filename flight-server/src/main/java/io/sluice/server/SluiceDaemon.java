package io.sluice.server;

import io.sluice.format.Formats;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadBackends;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightServer;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * The per-node daemon: opens the datasets, starts the Flight server and owns every resource
 * (allocator, stream threads, open shards). Closing it stops streams and frees everything; a leak
 * makes {@link #close()} fail.
 */
public final class SluiceDaemon implements AutoCloseable {
  /** Bytes queued per stream before it stops being ready: a few batches in flight. */
  static final int BACKPRESSURE_THRESHOLD_BYTES = 8 << 20;

  /** Smallest memory budget accepted: room for gRPC's buffers and a small batch. */
  public static final long MIN_MEMORY_BUDGET_BYTES = 1 << 20;

  /** Smallest memory budget with read-ahead: room for one job's cache and scratch buffers. */
  public static final long MIN_READ_AHEAD_BUDGET_BYTES = 256L << 20;

  private final BufferAllocator root;
  private final ReadBackend backend;
  private final Map<String, ServedDataset> datasets;
  private final ExecutorService streams;
  private final FlightServer server;
  private final SluiceProducer producer;
  private final ReadEngine readEngine;
  private final long memoryBudgetBytes;
  private final FlightTransport transport;
  private final FlightTransport.Loops loops;
  private final ShmDelivery shm;

  private SluiceDaemon(
      BufferAllocator root,
      ReadBackend backend,
      Map<String, ServedDataset> datasets,
      ExecutorService streams,
      FlightServer server,
      SluiceProducer producer,
      ReadEngine readEngine,
      long memoryBudgetBytes,
      FlightTransport transport,
      FlightTransport.Loops loops,
      ShmDelivery shm) {
    this.shm = shm;
    this.readEngine = readEngine;
    this.memoryBudgetBytes = memoryBudgetBytes;
    this.root = root;
    this.backend = backend;
    this.datasets = datasets;
    this.streams = streams;
    this.server = server;
    this.producer = producer;
    this.transport = transport;
    this.loops = loops;
  }

  /** The read backend in use: posix or io_uring. */
  public String backendName() {
    return backend.name();
  }

  /** The transport the Flight server runs on: nio or io_uring. */
  public FlightTransport transport() {
    return transport;
  }

  /**
   * Opens every dataset (refusing a bad one with its file and offset named) and starts listening.
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

  /** As below, with the default read-ahead. */
  public static SluiceDaemon start(
      String host,
      int port,
      Map<String, Path> datasetPaths,
      FlightTransport transportChoice,
      String backendChoice,
      long memoryBudgetBytes)
      throws IOException {
    return start(
        host,
        port,
        datasetPaths,
        transportChoice,
        backendChoice,
        memoryBudgetBytes,
        PrefetchOptions.defaults());
  }

  /**
   * As above, with the daemon's off-heap memory inside {@code memoryBudgetBytes}: half for the
   * sample caches and read-ahead buffers (when the budget is at least {@value
   * #MIN_READ_AHEAD_BUDGET_BYTES} bytes; below that streams read on demand), the rest for Arrow
   * buffers (batches being built and queued for the wire, gRPC's receive buffers). A batch that
   * does not fit fails its stream with RESOURCE_EXHAUSTED; the other streams go on.
   */
  public static SluiceDaemon start(
      String host,
      int port,
      Map<String, Path> datasetPaths,
      FlightTransport transportChoice,
      String backendChoice,
      long memoryBudgetBytes,
      PrefetchOptions prefetch)
      throws IOException {
    return start(
        host,
        port,
        datasetPaths,
        transportChoice,
        backendChoice,
        memoryBudgetBytes,
        prefetch,
        ShmDelivery.DEFAULT_DIR);
  }

  /**
   * As above, with shm delivery regions under {@code shmMount} (normally /dev/shm; shm delivery is
   * off, with the reason logged, when the daemon cannot make its folder there). shm rings take
   * their bytes from the Arrow part of the budget.
   */
  public static SluiceDaemon start(
      String host,
      int port,
      Map<String, Path> datasetPaths,
      FlightTransport transportChoice,
      String backendChoice,
      long memoryBudgetBytes,
      PrefetchOptions prefetch,
      Path shmMount)
      throws IOException {
    if (memoryBudgetBytes < MIN_MEMORY_BUDGET_BYTES) {
      throw new IllegalArgumentException(
          "memory_budget="
              + memoryBudgetBytes
              + " must be >= "
              + MIN_MEMORY_BUDGET_BYTES
              + " bytes (gRPC needs room for its own buffers)");
    }
    quietTransportNoise();
    FlightTransport transport = transportChoice.resolve();
    long cacheBudget = memoryBudgetBytes >= MIN_READ_AHEAD_BUDGET_BYTES ? memoryBudgetBytes / 2 : 0;
    BufferAllocator root = new RootAllocator(memoryBudgetBytes - cacheBudget);
    ReadBackend backend = ReadBackends.select(backendChoice);
    ReadEngine readEngine = null;
    Map<String, ServedDataset> datasets = new LinkedHashMap<>();
    ExecutorService streams =
        Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("sluice-stream-", 0).factory());
    FlightTransport.Loops loops = null;
    ShmDelivery shm = null;
    try {
      for (Map.Entry<String, Path> e : datasetPaths.entrySet()) {
        datasets.put(
            e.getKey(),
            ServedDataset.of(e.getKey(), e.getValue(), Formats.open(e.getValue(), backend)));
      }
      BufferAllocator flightAllocator = root.newChildAllocator("flight", 0, Long.MAX_VALUE);
      readEngine = new ReadEngine(backend, cacheBudget, datasets.size(), prefetch);
      shm = ShmDelivery.open(shmMount);
      SluiceProducer producer = new SluiceProducer(datasets, root, streams, readEngine, shm);
      FlightServer.Builder builder =
          FlightServer.builder(flightAllocator, Location.forGrpcInsecure(host, port), producer)
              // gRPC calls a stream ready only under 32 KiB queued by default: with batches
              // larger than that every putNext would wait for a flush (one batch per round trip).
              .backpressureThreshold(BACKPRESSURE_THRESHOLD_BYTES);
      loops = transport.apply(builder);
      FlightServer server = builder.build();
      server.start();
      return new SluiceDaemon(
          root,
          backend,
          datasets,
          streams,
          server,
          producer,
          readEngine,
          memoryBudgetBytes,
          transport,
          loops,
          shm);
    } catch (IOException | RuntimeException e) {
      if (loops != null) {
        loops.close();
      }
      if (shm != null) {
        shm.close();
      }
      streams.shutdownNow();
      if (readEngine != null) {
        readEngine.close();
      }
      for (ServedDataset d : datasets.values()) {
        d.source().close();
      }
      root.close();
      throw e;
    }
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

  /** The address clients connect to, for example {@code grpc+tcp://127.0.0.1:8815}. */
  public String uri() {
    Location l = server.getLocation();
    return "grpc://" + l.getUri().getHost() + ":" + server.getPort();
  }

  public int port() {
    return server.getPort();
  }

  public Map<String, ServedDataset> datasets() {
    return datasets;
  }

  /** Requests refused as the client's mistake since start. */
  public long rejectedRequests() {
    return producer.rejectedRequests();
  }

  /** The budget the daemon's off-heap memory (caches, read-ahead, Arrow buffers) lives in. */
  public long memoryBudgetBytes() {
    return memoryBudgetBytes;
  }

  /** The part of the budget for Arrow buffers (batches being built and queued). */
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

  public void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  @Override
  public void close() throws IOException {
    try {
      server.shutdown();
      producer.stopStreams();
      // Well inside a stream's drain wait (RankStreamer.DRAIN_WAIT_NS): buffers a stalled client
      // never read are freed only when close() below drops its connection.
      if (!server.awaitTermination(3, TimeUnit.SECONDS)) {
        server.close();
      }
      // Streams end (and drain what they queued) before the event loops that carry their
      // writes go away: a write handed to a terminated loop is never released.
      streams.shutdown();
      if (!streams.awaitTermination(15, TimeUnit.SECONDS)) {
        streams.shutdownNow();
      }
      server.close();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      streams.shutdownNow();
    }
    loops.close();
    shm.close();
    readEngine.close();
    for (ServedDataset d : datasets.values()) {
      d.source().close();
    }
    backend.close();
    for (BufferAllocator child : root.getChildAllocators()) {
      child.close();
    }
    root.close(); // throws if any batch buffer leaked
  }
}
