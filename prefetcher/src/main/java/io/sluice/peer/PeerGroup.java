package io.sluice.peer;

import io.sluice.planner.EpochPlan;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongFunction;
import java.util.logging.Logger;

/**
 * A daemon's place in a multi-node job: it serves its caches to the other nodes and fetches from
 * theirs, one {@link StripedChannel} per peer node. No coordinator: every daemon computes from the
 * plan which node consumed (and so caches) each sample, the idea of NoPFS (Dryden et al.,
 * "Clairvoyant Prefetching for Distributed Machine Learning I/O", SC 2021). A node whose fetch
 * fails on every path is left alone for {@code downMs}; storage serves meanwhile. Thread-safe.
 */
public final class PeerGroup implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(PeerGroup.class.getName());

  /**
   * How the group behaves. Fetch timeouts belong to the transport ({@link PeerTransports#open}).
   *
   * @param bindHost the host the peer servers bind on every port of this node's paths, or null for
   *     each path's own address
   * @param retryAfterMs a failed path is tried again after this long
   * @param downMs a node that failed on every path is not asked for this long
   */
  public record Settings(String bindHost, long retryAfterMs, long downMs) {
    public Settings {
      if (retryAfterMs < 1 || downMs < 0) {
        throw new IllegalArgumentException(
            "retryAfterMs=" + retryAfterMs + ", downMs=" + downMs + " must be >= 1, >= 0");
      }
    }

    public static Settings defaults() {
      return new Settings(null, 5000, 5000);
    }
  }

  /** Counters since start. */
  public record Stats(
      long bytes,
      long samples,
      long missed,
      long failures,
      long timeouts,
      List<PathStats> paths,
      PeerServerStats served) {}

  /** One path's bytes and drops. */
  public record PathStats(int node, String address, long bytes, long failures) {}

  private final PeerTopology topology;
  private final PeerTransport transport;
  private final Settings settings;
  private final List<PeerServer> servers = new ArrayList<>();
  private final StripedChannel[] channels; // by node rank; null for this node
  private final AtomicLongArray downUntil; // System.nanoTime() by node; 0 when up
  private final LongAdder bytes = new LongAdder();
  private final LongAdder samples = new LongAdder();
  private final LongAdder missed = new LongAdder();
  private final LongAdder failures = new LongAdder();
  private final LongAdder timeouts = new LongAdder();
  private volatile boolean closed;

  private PeerGroup(PeerTopology topology, PeerTransport transport, Settings settings) {
    this.topology = topology;
    this.transport = transport;
    this.settings = settings;
    this.channels = new StripedChannel[topology.nodeCount()];
    this.downUntil = new AtomicLongArray(topology.nodeCount());
    for (PeerNode n : topology.peers()) {
      channels[n.rank()] = new StripedChannel(transport, n.paths(), settings.retryAfterMs());
    }
  }

  /**
   * Serves {@code held} on every port of this node's paths and gets ready to fetch from the others.
   * Takes ownership of {@code transport}.
   */
  public static PeerGroup start(
      PeerTopology topology, PeerTransport transport, HeldSamples held, Settings settings)
      throws IOException {
    PeerGroup g = new PeerGroup(topology, transport, settings);
    try {
      for (InetSocketAddress bind : binds(topology, settings.bindHost())) {
        g.servers.add(transport.serve(bind, held));
      }
    } catch (IOException | RuntimeException e) {
      g.close();
      throw e;
    }
    LOG.info(
        () ->
            "peers: node "
                + topology.nodeRank()
                + " of "
                + topology.nodeCount()
                + " over "
                + transport.name()
                + ", serving on "
                + g.servers.stream().map(s -> s.address().toString()).toList()
                + ", peers "
                + topology);
    return g;
  }

  /**
   * Where this node's servers listen: each of its own paths' addresses, or {@code bindHost} on each
   * of their ports.
   */
  private static Set<InetSocketAddress> binds(PeerTopology topology, String bindHost) {
    Set<InetSocketAddress> out = new LinkedHashSet<>();
    for (PeerPath p : topology.self().paths()) {
      InetSocketAddress a = p.address();
      String host = bindHost == null ? a.getHostString() : bindHost;
      out.add(new InetSocketAddress(host, a.getPort()));
    }
    return out;
  }

  public PeerTopology topology() {
    return topology;
  }

  public String transportName() {
    return transport.name();
  }

  /** Where this node's servers listen. */
  public List<InetSocketAddress> serving() {
    return servers.stream().map(PeerServer::address).toList();
  }

  /** Whether {@code node} is a peer worth asking now. */
  boolean isUp(int node) {
    long until = downUntil.get(node);
    return channels[node] != null && (until == 0 || System.nanoTime() - until >= 0);
  }

  /**
   * The peers of one job: null (with a log line) when its world size does not split into equal
   * blocks over the nodes, so the plan cannot say which node holds what.
   *
   * @param plans the job's plan of each epoch
   */
  public PeerSource sourceFor(String dataset, LongFunction<EpochPlan> plans) {
    int worldSize = plans.apply(0).worldSize();
    if (worldSize < topology.nodeCount() || worldSize % topology.nodeCount() != 0) {
      LOG.warning(
          () ->
              "dataset="
                  + dataset
                  + ": world_size="
                  + worldSize
                  + " does not split over nodes="
                  + topology.nodeCount()
                  + "; this job reads from storage only");
      return null;
    }
    return new JobPeers(dataset, plans, worldSize);
  }

  /** One job's view: the plan says where each sample was consumed. */
  private final class JobPeers implements PeerSource {
    private final String dataset;
    private final LongFunction<EpochPlan> plans;
    private final int ranksPerNode;

    JobPeers(String dataset, LongFunction<EpochPlan> plans, int worldSize) {
      this.dataset = dataset;
      this.plans = plans;
      this.ranksPerNode = worldSize / topology.nodeCount();
    }

    /** The node that consumes {@code sampleId} in {@code epoch} first, or -1 when none does. */
    private int consumer(long sampleId, long epoch) {
      EpochPlan plan = plans.apply(epoch);
      if (sampleId < 0 || sampleId >= plan.sequence().size()) {
        return -1;
      }
      long position = plan.sequence().positionOf(sampleId);
      if (position >= plan.epochLength()) {
        return -1; // dropped with the tail (drop_last)
      }
      return plan.rankOf(position) / ranksPerNode;
    }

    @Override
    public int holderOf(long sampleId, long epoch) {
      if (epoch <= 0) {
        return -1;
      }
      int node = consumer(sampleId, epoch - 1);
      return node < 0 || node == topology.nodeRank() || !isUp(node) ? -1 : node;
    }

    @Override
    public long lentAtStep(long sampleId, long epoch) {
      if (epoch < 0 || consumer(sampleId, epoch) != topology.nodeRank()) {
        return -1;
      }
      EpochPlan next = plans.apply(epoch + 1);
      if (sampleId >= next.sequence().size()) {
        return -1;
      }
      long position = next.sequence().positionOf(sampleId);
      if (position >= next.epochLength()
          || next.rankOf(position) / ranksPerNode == topology.nodeRank()) {
        return -1;
      }
      return position / next.globalBatch();
    }

    @Override
    public CompletableFuture<boolean[]> fetch(int node, long[] ids, MemorySegment[] dsts) {
      StripedChannel ch = node >= 0 && node < channels.length ? channels[node] : null;
      if (closed) {
        return CompletableFuture.failedFuture(new PeerException("peer group closed"));
      }
      if (ch == null) {
        return CompletableFuture.failedFuture(new PeerException("node=" + node + " is not a peer"));
      }
      return ch.fetch(dataset, ids, dsts)
          .whenComplete(
              (filled, error) -> {
                if (error == null) {
                  for (int i = 0; i < filled.length; i++) {
                    if (filled[i]) {
                      samples.increment();
                      bytes.add(dsts[i].byteSize());
                    } else {
                      missed.increment();
                    }
                  }
                  return;
                }
                Throwable cause = error instanceof CompletionException ce ? ce.getCause() : error;
                if (cause instanceof PeerException pe && pe.timedOut()) {
                  timeouts.increment();
                } else {
                  failures.increment();
                }
                down(node, cause);
              });
    }
  }

  private void down(int node, Throwable why) {
    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(settings.downMs());
    long was = downUntil.getAndSet(node, until == 0 ? 1 : until);
    if (was != 0 && System.nanoTime() - was < 0) {
      return; // down already: fetches in flight at the time fail one after another
    }
    LOG.warning(
        () ->
            "peers: node "
                + node
                + " not asked for "
                + settings.downMs()
                + " ms, storage serves: "
                + why);
  }

  public Stats stats() {
    List<PathStats> paths = new ArrayList<>();
    for (int node = 0; node < channels.length; node++) {
      if (channels[node] == null) {
        continue;
      }
      for (StripedChannel.Path p : channels[node].paths()) {
        InetSocketAddress a = p.path().address();
        paths.add(
            new PathStats(node, a.getHostString() + ":" + a.getPort(), p.bytes(), p.failures()));
      }
    }
    long fetches = 0;
    long sent = 0;
    long notHeld = 0;
    long sentBytes = 0;
    long bad = 0;
    for (PeerServer s : servers) {
      PeerServerStats x = s.stats();
      fetches += x.fetches();
      sent += x.samplesSent();
      notHeld += x.samplesMissed();
      sentBytes += x.bytesSent();
      bad += x.badRequests();
    }
    return new Stats(
        bytes.sum(),
        samples.sum(),
        missed.sum(),
        failures.sum(),
        timeouts.sum(),
        paths,
        new PeerServerStats(fetches, sent, notHeld, sentBytes, bad));
  }

  @Override
  public void close() {
    closed = true;
    for (StripedChannel c : channels) {
      if (c != null) {
        c.close();
      }
    }
    for (PeerServer s : servers) {
      s.close();
    }
    transport.close();
  }
}
