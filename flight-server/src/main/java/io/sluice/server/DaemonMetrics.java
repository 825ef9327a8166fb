package io.sluice.server;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.DataPointSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.Label;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import io.sluice.client.Delivery;
import io.sluice.prefetch.StreamStats;
import io.sluice.read.CountingReadBackend;
import io.sluice.s3.S3Stats;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * The daemon's counters and gauges, in a Prometheus registry of its own: served over HTTP by {@link
 * MetricsServer} and, as rows, by the {@code stats} action ({@code sluice stats}). Counters only
 * grow while the daemon runs; they start at zero with it.
 */
final class DaemonMetrics {
  /** Error kinds for {@code sluice_errors_total}: what a client or an operator acts on. */
  enum ErrorKind {
    INVALID_ARGUMENT,
    NOT_FOUND,
    UNAUTHENTICATED,
    UNAVAILABLE,
    RESOURCE_EXHAUSTED,
    BAD_DATA,
    INTERNAL;

    String label() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  /** One series as the stats action reports it. */
  record Row(String name, Map<String, String> labels, double value) {}

  private final PrometheusRegistry registry = new PrometheusRegistry();
  private final Counter deliveredBytes;
  private final Counter deliveredBatches;
  private final Counter deliveredSamples;
  private final Counter errors;

  DaemonMetrics() {
    deliveredBytes =
        Counter.builder()
            .name("sluice_delivered_bytes_total")
            .help("Batch bytes delivered to clients (Arrow IPC body), by dataset and delivery path")
            .labelNames("dataset", "delivery")
            .register(registry);
    deliveredBatches =
        Counter.builder()
            .name("sluice_delivered_batches_total")
            .help("Batches delivered to clients, by dataset and delivery path")
            .labelNames("dataset", "delivery")
            .register(registry);
    deliveredSamples =
        Counter.builder()
            .name("sluice_delivered_samples_total")
            .help("Samples delivered to clients (padding included), by dataset and delivery path")
            .labelNames("dataset", "delivery")
            .register(registry);
    errors =
        Counter.builder()
            .name("sluice_errors_total")
            .help(
                "Requests refused and streams failed, by kind: invalid_argument, not_found,"
                    + " unauthenticated, unavailable, resource_exhausted, bad_data, internal")
            .labelNames("kind")
            .register(registry);
    for (ErrorKind k : ErrorKind.values()) {
      errors.labelValues(k.label()); // every kind shows, at 0, from the start
    }
  }

  PrometheusRegistry registry() {
    return registry;
  }

  void delivered(String dataset, Delivery delivery, long bytes, int samples) {
    String d = delivery.wireName();
    deliveredBytes.labelValues(dataset, d).inc(bytes);
    deliveredBatches.labelValues(dataset, d).inc();
    deliveredSamples.labelValues(dataset, d).inc(samples);
  }

  void error(ErrorKind kind) {
    errors.labelValues(kind.label()).inc();
  }

  /** Registers the series read from the daemon's parts at each scrape. */
  void bind(
      List<CountingReadBackend> backends,
      S3Stats s3,
      Supplier<StreamStats.Snapshot> totals,
      LongSupplier failedReadAheads,
      Supplier<Map<String, long[]>> streamsAndLeadByDataset,
      LongSupplier allocatedBytes,
      long budgetBytes,
      LongSupplier shmRegions) {
    CounterWithCallback.builder()
        .name("sluice_bytes_read_total")
        .help("Bytes read from storage, by read backend")
        .labelNames("backend")
        .callback(
            cb -> {
              for (CountingReadBackend b : backends) {
                cb.call(b.bytesRead(), b.name());
              }
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_reads_total")
        .help("Reads from storage completed, by read backend")
        .labelNames("backend")
        .callback(
            cb -> {
              for (CountingReadBackend b : backends) {
                cb.call(b.reads(), b.name());
              }
            })
        .register(registry);
    if (s3 != null) {
      bindS3(s3);
    }
    CounterWithCallback.builder()
        .name("sluice_stall_seconds_total")
        .help("Time streams waited for sample bytes not yet in memory")
        .callback(cb -> cb.call(totals.get().stallNanos() / 1e9))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_cache_hits_total")
        .help("Samples a stream found in memory (cached or read ahead)")
        .callback(cb -> cb.call(totals.get().hits()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_cache_misses_total")
        .help("Samples a stream had to read itself")
        .callback(cb -> cb.call(totals.get().misses()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_read_ahead_failures_total")
        .help("Read-ahead reads that failed (the stream re-reads and reports the sample)")
        .callback(cb -> cb.call(failedReadAheads.getAsLong()))
        .register(registry);
    GaugeWithCallback.builder()
        .name("sluice_streams")
        .help("Streams running now, by dataset")
        .labelNames("dataset")
        .callback(cb -> streamsAndLeadByDataset.get().forEach((d, v) -> cb.call(v[0], d)))
        .register(registry);
    GaugeWithCallback.builder()
        .name("sluice_prefetch_lead_steps")
        .help("Steps read ahead of the slowest running stream, by dataset (-1: no read-ahead)")
        .labelNames("dataset")
        .callback(cb -> streamsAndLeadByDataset.get().forEach((d, v) -> cb.call(v[1], d)))
        .register(registry);
    GaugeWithCallback.builder()
        .name("sluice_allocated_bytes")
        .help("Off-heap bytes held for batches being built and sent")
        .callback(cb -> cb.call(allocatedBytes.getAsLong()))
        .register(registry);
    GaugeWithCallback.builder()
        .name("sluice_memory_budget_bytes")
        .help("The daemon's off-heap memory budget")
        .callback(cb -> cb.call(budgetBytes))
        .register(registry);
    GaugeWithCallback.builder()
        .name("sluice_shm_regions")
        .help("Shared-memory regions alive (one per running shm stream)")
        .callback(cb -> cb.call(shmRegions.getAsLong()))
        .register(registry);
  }

  /** Every series now, counters named with their {@code _total}. */
  List<Row> rows() {
    List<Row> out = new ArrayList<>();
    for (MetricSnapshot m : registry.scrape()) {
      String name = m.getMetadata().getPrometheusName();
      if (m instanceof CounterSnapshot) {
        name += "_total";
      }
      for (DataPointSnapshot p : m.getDataPoints()) {
        Map<String, String> labels = new LinkedHashMap<>();
        for (Label l : p.getLabels()) {
          labels.put(l.getName(), l.getValue());
        }
        double v =
            p instanceof CounterSnapshot.CounterDataPointSnapshot c
                ? c.getValue()
                : p instanceof GaugeSnapshot.GaugeDataPointSnapshot g ? g.getValue() : Double.NaN;
        out.add(new Row(name, labels, v));
      }
    }
    return out;
  }

  /** The multi-node counters: what came from peers' caches and over which path. */
  void bindPeers(java.util.function.Supplier<io.sluice.peer.PeerGroup.Stats> stats) {
    CounterWithCallback.builder()
        .name("sluice_peer_bytes_total")
        .help("Sample bytes read ahead from peer daemons' caches instead of storage")
        .callback(cb -> cb.call(stats.get().bytes()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_peer_samples_total")
        .help("Samples read ahead from peer daemons' caches instead of storage")
        .callback(cb -> cb.call(stats.get().samples()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_peer_misses_total")
        .help("Samples asked of a peer that it did not hold (read from storage instead)")
        .callback(cb -> cb.call(stats.get().missed()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_peer_failures_total")
        .help("Fetches from peers that failed on every path or timed out (storage served them)")
        .labelNames("kind")
        .callback(
            cb -> {
              io.sluice.peer.PeerGroup.Stats s = stats.get();
              cb.call(s.failures(), "unreachable");
              cb.call(s.timeouts(), "timeout");
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_peer_served_bytes_total")
        .help("Sample bytes this daemon's caches lent to peers")
        .callback(cb -> cb.call(stats.get().served().bytesSent()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_peer_path_bytes_total")
        .help("Sample bytes fetched from peers over each path (one per NIC)")
        .labelNames("node", "path")
        .callback(
            cb -> {
              for (io.sluice.peer.PeerGroup.PathStats p : stats.get().paths()) {
                cb.call(p.bytes(), Integer.toString(p.node()), p.address());
              }
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_peer_path_failures_total")
        .help("Times a path to a peer failed and was dropped (its share redone on the others)")
        .labelNames("node", "path")
        .callback(
            cb -> {
              for (io.sluice.peer.PeerGroup.PathStats p : stats.get().paths()) {
                cb.call(p.failures(), Integer.toString(p.node()), p.address());
              }
            })
        .register(registry);
  }

  /** The memory the caches hold on loan from delivery's share ({@link MemorySplit}). */
  void bindMemoryLent(LongSupplier lentBytes) {
    GaugeWithCallback.builder()
        .name("sluice_memory_lent_bytes")
        .help(
            "Bytes of the memory budget's delivery share the sample caches hold on loan (taken"
                + " back when delivery needs them)")
        .callback(cb -> cb.call(lentBytes.getAsLong()))
        .register(registry);
  }

  /** The spill tier's counter, when one is configured. */
  void bindSpill(LongSupplier spillHits) {
    CounterWithCallback.builder()
        .name("sluice_spill_hits_total")
        .help("Samples read ahead from the local spill tier instead of the object store")
        .callback(cb -> cb.call(spillHits.getAsLong()))
        .register(registry);
  }

  private void bindS3(S3Stats s3) {
    CounterWithCallback.builder()
        .name("sluice_s3_requests_total")
        .help("Requests sent to the object store: first tries, retries and hedges")
        .callback(cb -> cb.call(s3.requests()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_s3_retries_total")
        .help("Object-store requests tried again after a 5xx, throttling, reset or timeout")
        .callback(cb -> cb.call(s3.retries()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_s3_hedges_total")
        .help("Second requests sent for reads far slower than their peers")
        .callback(cb -> cb.call(s3.hedges()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_s3_hedges_won_total")
        .help("Hedged requests that finished first")
        .callback(cb -> cb.call(s3.hedgesWon()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_s3_timeouts_total")
        .help("Object-store tries abandoned for taking longer than s3.attempt_timeout_ms")
        .callback(cb -> cb.call(s3.timeouts()))
        .register(registry);
    CounterWithCallback.builder()
        .name("sluice_s3_failures_total")
        .help("Object-store calls that failed after their last try")
        .callback(cb -> cb.call(s3.failures()))
        .register(registry);
  }
}
