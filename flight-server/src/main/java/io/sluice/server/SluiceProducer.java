package io.sluice.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import io.sluice.client.Delivery;
import io.sluice.client.Protocol;
import io.sluice.client.ProtocolException;
import io.sluice.client.ShmLayout;
import io.sluice.client.StreamRequest;
import io.sluice.format.DatasetFormatException;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import io.sluice.prefetch.Prefetcher;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.ActionType;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.Criteria;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightEndpoint;
import org.apache.arrow.flight.FlightInfo;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.NoOpFlightProducer;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.Ticket;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The daemon's Flight face: turns descriptors into plans and hands each DoGet to a stream thread. A
 * client's mistake becomes INVALID_ARGUMENT or NOT_FOUND here, at one boundary, and never disturbs
 * other streams. Called on gRPC threads; never blocks them.
 */
final class SluiceProducer extends NoOpFlightProducer {
  private static final Logger LOG = Logger.getLogger(SluiceProducer.class.getName());

  /** Shards per block for {@code shuffle=block} until the config issue makes it an option. */
  static final int DEFAULT_BLOCK_SHARDS = 4;

  private final Map<String, ServedDataset> datasets;
  private final BufferAllocator allocator;
  private final ExecutorService streams;
  private final ReadEngine readEngine;
  private final AtomicLong rejectedRequests = new AtomicLong();
  private final Set<RankStreamer> active = ConcurrentHashMap.newKeySet();
  // Set before the running streams are stopped; a stream added after sees it and stops itself.
  private volatile boolean stopping;
  private final ShmDelivery shm;
  private final DaemonMetrics metrics;
  private final MemorySplit memory;

  SluiceProducer(
      Map<String, ServedDataset> datasets,
      BufferAllocator allocator,
      MemorySplit memory,
      ExecutorService streams,
      ReadEngine readEngine,
      ShmDelivery shm,
      DaemonMetrics metrics) {
    this.memory = memory;
    this.shm = shm;
    this.metrics = metrics;
    this.datasets = Map.copyOf(datasets);
    this.allocator = allocator;
    this.streams = streams;
    this.readEngine = readEngine;
  }

  /** Asks every running stream to end now (daemon shutdown). */
  void stopStreams() {
    stopping = true;
    for (RankStreamer s : active) {
      s.stop();
    }
  }

  /**
   * Waits, up to {@code millis} in all, until every running stream writes no more (after {@link
   * #stopStreams}); false when some still might.
   */
  boolean awaitWritesDone(long millis) throws InterruptedException {
    long deadline = System.nanoTime() + millis * 1_000_000L;
    for (RankStreamer s : active) {
      if (!s.awaitWritesDone(Math.max(0, deadline - System.nanoTime()))) {
        return false;
      }
    }
    return true;
  }

  long rejectedRequests() {
    return rejectedRequests.get();
  }

  /** Per dataset: {streams running, steps read ahead of the slowest of them (-1: none)}. */
  Map<String, long[]> streamsAndLead() {
    Map<String, long[]> out = new LinkedHashMap<>();
    for (String d : datasets.keySet()) {
      out.put(d, new long[] {0, -1});
    }
    for (RankStreamer s : active) {
      long[] v = out.get(s.datasetName());
      long lead = s.lead();
      v[1] = v[0] == 0 ? lead : Math.min(v[1], lead);
      v[0]++;
    }
    return out;
  }

  @Override
  public void listActions(CallContext context, StreamListener<ActionType> listener) {
    listener.onNext(
        new ActionType(
            Protocol.STATS_ACTION,
            "read-ahead counters per job and stream, as JSON (hits, misses, stalls, reads, lead)"));
    listener.onNext(
        new ActionType(
            Protocol.SHM_PROBE_ACTION,
            "where the shm probe file is: a client that can read it may ask for shm delivery"));
    listener.onCompleted();
  }

  @Override
  public void doAction(CallContext context, Action action, StreamListener<Result> listener) {
    boolean stats = Protocol.STATS_ACTION.equals(action.getType());
    if (!stats && !Protocol.SHM_PROBE_ACTION.equals(action.getType())) {
      listener.onError(
          reject(
              CallStatus.UNIMPLEMENTED.withDescription(
                  "action=" + action.getType() + " is not known (known: stats, shm_probe)")));
      return;
    }
    try {
      Map<String, Object> out = new LinkedHashMap<>();
      if (stats) {
        out.put("allocated_bytes", allocator.getAllocatedMemory());
        out.put("streams", active.size());
        out.put("shm_regions", shm.liveRegions());
        out.put("jobs", readEngine.stats());
        out.put("metrics", metrics.rows());
      } else {
        if (shm.isAvailable()) {
          out.put("available", true);
          out.put("path", shm.probePath().toString());
          out.put("layout_version", ShmLayout.VERSION);
        } else {
          out.put("available", false);
          out.put("cause", shm.unavailabilityCause());
        }
        out.put("cuda", cudaProbe());
      }
      listener.onNext(new Result(STATS_JSON.writeValueAsBytes(out)));
      listener.onCompleted();
    } catch (java.io.IOException e) {
      listener.onError(CallStatus.INTERNAL.withDescription(e.getMessage()).toRuntimeException());
    }
  }

  private static final ObjectMapper STATS_JSON =
      new ObjectMapper().setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE);

  @Override
  public void listFlights(
      CallContext context, Criteria criteria, StreamListener<FlightInfo> listener) {
    for (ServedDataset d : datasets.values()) {
      listener.onNext(
          new FlightInfo(
              d.schema(),
              FlightDescriptor.path(d.name()),
              List.of(),
              d.source().manifest().totalBytes(),
              d.source().layout().totalSamples()));
    }
    listener.onCompleted();
  }

  @Override
  public FlightInfo getFlightInfo(CallContext context, FlightDescriptor descriptor) {
    if (!descriptor.isCommand()) {
      throw reject(
          CallStatus.INVALID_ARGUMENT.withDescription(
              "descriptor must be a command holding the request JSON, not a path"));
    }
    Resolved r = resolve(descriptor.getCommand());
    byte[] ticket = r.request.toJson();
    long rows = r.plan.stepCount() * r.request.batchSize();
    return new FlightInfo(
        r.schema, descriptor, List.of(new FlightEndpoint(new Ticket(ticket))), -1, rows);
  }

  @Override
  public void getStream(CallContext context, Ticket ticket, ServerStreamListener listener) {
    Resolved r;
    try {
      r = resolve(ticket.getBytes());
    } catch (FlightRuntimeException e) {
      listener.error(e);
      return;
    }
    Prefetcher.Consumer readAhead;
    try {
      readAhead =
          readEngine.attach(r.dataset, r.request, r.plan.stepAtCursor(r.request.startCursor()));
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, "read-ahead unavailable for this stream, reading on demand", e);
      readAhead = null;
    }
    RankStreamer streamer =
        new RankStreamer(
            r.dataset, r.request, r.plan, r.schema, allocator, memory, listener, readAhead, shm,
            metrics);
    active.add(streamer);
    if (stopping) {
      streamer.stop(); // a call accepted just before the stop: it ends at its first step
    }
    try {
      streams.execute(
          () -> {
            try {
              streamer.run();
            } finally {
              active.remove(streamer);
            }
          });
    } catch (RejectedExecutionException e) {
      active.remove(streamer);
      if (readAhead != null) {
        readAhead.close();
      }
      listener.error(
          CallStatus.UNAVAILABLE.withDescription("daemon is shutting down").toRuntimeException());
    }
  }

  private record Resolved(
      ServedDataset dataset, StreamRequest request, EpochPlan plan, Schema schema) {}

  private Resolved resolve(byte[] json) {
    StreamRequest request;
    try {
      request = StreamRequest.parse(json);
    } catch (ProtocolException e) {
      throw reject(CallStatus.INVALID_ARGUMENT.withDescription(e.getMessage()).withCause(e));
    }
    ServedDataset dataset = datasets.get(request.dataset());
    if (dataset == null) {
      throw reject(
          CallStatus.NOT_FOUND.withDescription(
              "dataset="
                  + request.dataset()
                  + " is not served here (served: "
                  + String.join(", ", datasets.keySet().stream().sorted().toList())
                  + ")"));
    }
    try {
      // A stat per shard per stream: cheap next to an epoch, and it keeps a file rewritten
      // after start-up from being served as garbage.
      dataset.source().manifest().checkUnchanged(dataset.dir());
    } catch (DatasetFormatException | java.io.IOException e) {
      throw reject(
          CallStatus.UNAVAILABLE.withDescription(
              "dataset=" + dataset.name() + " is unavailable: " + e.getMessage()));
    }
    Schema schema;
    try {
      schema = dataset.project(request.columns());
    } catch (IllegalArgumentException e) {
      throw reject(CallStatus.INVALID_ARGUMENT.withDescription(e.getMessage()).withCause(e));
    }
    request = request.withDelivery(resolveDelivery(request, dataset.name(), schema));
    try {
      GlobalSequence sequence =
          GlobalSequence.of(
              dataset.source().layout(),
              request.seed(),
              request.epoch(),
              ShuffleMode.parse(request.shuffle(), DEFAULT_BLOCK_SHARDS));
      EpochPlan plan =
          EpochPlan.of(sequence, request.worldSize(), request.batchSize(), request.dropLast());
      plan.stepAtCursor(request.startCursor()); // validates the cursor now, not mid-stream
      return new Resolved(dataset, request, plan, schema);
    } catch (IllegalArgumentException e) {
      throw reject(CallStatus.INVALID_ARGUMENT.withDescription(e.getMessage()).withCause(e));
    }
  }

  /**
   * The path a stream takes. {@code shm} needs a client that proved it can map this daemon's shared
   * memory (the probe token); {@code cuda} needs that too (CUDA IPC works within one host, and the
   * release mark lives in shared memory), a GPU here and a token schema; {@code auto} takes cuda
   * when the client named a device and all that holds, else shm when it proved it can, else cpu.
   */
  private Delivery resolveDelivery(StreamRequest request, String datasetName, Schema schema) {
    boolean shmReady = shm.accepts(request.shmToken());
    return switch (request.delivery()) {
      case CPU -> Delivery.CPU;
      case AUTO -> {
        if (request.device() >= 0
            && shmReady
            && cudaRefusal(request, datasetName, schema) == null) {
          yield Delivery.CUDA;
        }
        yield shmReady ? Delivery.SHM : Delivery.CPU;
      }
      case SHM -> {
        if (!shm.isAvailable()) {
          throw reject(
              CallStatus.UNAVAILABLE.withDescription(
                  "delivery=shm is unavailable on this daemon: "
                      + shm.unavailabilityCause()
                      + "; use cpu or auto"));
        }
        if (!shmReady) {
          throw reject(
              CallStatus.INVALID_ARGUMENT.withDescription(
                  "delivery=shm needs shm_token: the content of the file the shm_probe action"
                      + " names, readable only on the daemon's host (use auto to fall back to cpu)"));
        }
        yield Delivery.SHM;
      }
      case CUDA -> {
        CallStatus refusal = cudaRefusal(request, datasetName, schema);
        if (refusal != null) {
          throw reject(refusal);
        }
        if (!shmReady) {
          throw reject(
              CallStatus.INVALID_ARGUMENT.withDescription(
                  "delivery=cuda needs shm_token: the content of the file the shm_probe action"
                      + " names (CUDA IPC works only on the daemon's host; use auto to fall back)"));
        }
        yield Delivery.CUDA;
      }
    };
  }

  /** Why this daemon cannot put the request's batches on a GPU, or null when it can. */
  private CallStatus cudaRefusal(StreamRequest request, String datasetName, Schema schema) {
    CudaDevices gpus = shm.cuda();
    if (!gpus.available()) {
      return CallStatus.UNAVAILABLE.withDescription(
          "delivery=cuda: no usable GPU on the daemon's host: "
              + gpus.unavailabilityCause()
              + "; use cpu, shm or auto");
    }
    if (!shm.isAvailable()) {
      return CallStatus.UNAVAILABLE.withDescription(
          "delivery=cuda needs the daemon's shared memory for its release marks: "
              + shm.unavailabilityCause()
              + "; use cpu or auto");
    }
    if (request.cudaDevice() >= gpus.count()) {
      return CallStatus.INVALID_ARGUMENT.withDescription(
          "device=" + request.cudaDevice() + ": the daemon's host has " + gpus.count() + " GPU(s)");
    }
    if (TokenBatches.tokenShape(schema) == null) {
      return CallStatus.INVALID_ARGUMENT.withDescription(
          "delivery=cuda: dataset="
              + datasetName
              + " with columns "
              + schema.getFields().stream().map(f -> f.getName()).toList()
              + " is not sample_id plus one fixed-size list of integers, which is what cuda"
              + " delivers for now; use cpu, shm or auto");
    }
    return null;
  }

  /** What the shm probe says about cuda delivery: the GPUs, or why there are none. */
  private Map<String, Object> cudaProbe() {
    CudaDevices gpus = shm.cuda();
    Map<String, Object> cuda = new LinkedHashMap<>();
    cuda.put("available", gpus.available());
    if (gpus.available()) {
      cuda.put("devices", gpus.names());
    } else {
      cuda.put("cause", gpus.unavailabilityCause());
    }
    return cuda;
  }

  private FlightRuntimeException reject(CallStatus status) {
    rejectedRequests.incrementAndGet();
    metrics.error(
        switch (status.code()) {
          case NOT_FOUND -> DaemonMetrics.ErrorKind.NOT_FOUND;
          case UNAVAILABLE -> DaemonMetrics.ErrorKind.UNAVAILABLE;
          case UNIMPLEMENTED, INVALID_ARGUMENT -> DaemonMetrics.ErrorKind.INVALID_ARGUMENT;
          default -> DaemonMetrics.ErrorKind.INTERNAL;
        });
    LOG.log(Level.FINE, "rejected request: {0}", status.description());
    return status.toRuntimeException();
  }
}
