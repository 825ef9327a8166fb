package io.sluice.peer;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.logging.Logger;

/**
 * A fetch from one peer striped over every path to it (one per NIC): the samples are cut into
 * contiguous shares, each path's share in proportion to its weight in bytes, and fetched at once. A
 * path that fails is dropped and its share redone on the paths left; it is tried again, on a fresh
 * connection, after {@code retryAfterMs}. The fetch fails only when no path is left. Thread-safe.
 */
public final class StripedChannel implements PeerChannel {
  private static final Logger LOG = Logger.getLogger(StripedChannel.class.getName());

  /** Fetches below this many bytes go whole over one path: striping them buys nothing. */
  static final long MIN_STRIPE_BYTES = 64 << 10;

  private final PeerTransport transport;
  private final List<Path> paths;
  private final long retryAfterNanos;
  private boolean closed; // guarded by this

  /** One path's connection, health and counters. */
  public static final class Path {
    final PeerPath path;
    final LongAdder bytes = new LongAdder();
    final LongAdder failures = new LongAdder();
    private PeerChannel channel; // guarded by the StripedChannel
    private long downUntil; // System.nanoTime(); 0 when up; guarded by the StripedChannel
    private double credit; // smooth weighted round robin; guarded by the StripedChannel

    Path(PeerPath path) {
      this.path = path;
    }

    public PeerPath path() {
      return path;
    }

    /** Sample bytes this path has brought. */
    public long bytes() {
      return bytes.sum();
    }

    /** Times this path failed and was dropped. */
    public long failures() {
      return failures.sum();
    }
  }

  public StripedChannel(PeerTransport transport, List<PeerPath> paths, long retryAfterMs) {
    if (paths.isEmpty()) {
      throw new IllegalArgumentException("a striped channel needs at least one path");
    }
    this.transport = transport;
    this.paths = paths.stream().map(Path::new).toList();
    this.retryAfterNanos = TimeUnit.MILLISECONDS.toNanos(retryAfterMs);
  }

  /** Every path, in the order given, with its counters. */
  public List<Path> paths() {
    return paths;
  }

  @Override
  public String describe() {
    StringBuilder b = new StringBuilder();
    for (Path p : paths) {
      b.append(b.isEmpty() ? "" : "+")
          .append(p.path.address().getHostString())
          .append(':')
          .append(p.path.address().getPort());
    }
    return transport.name() + "://" + b;
  }

  /** The live paths' channels, connecting (or reconnecting, once due) where needed. */
  private synchronized List<Path> live() {
    long now = System.nanoTime();
    List<Path> out = new ArrayList<>(paths.size());
    if (closed) {
      return out;
    }
    for (Path p : paths) {
      if (p.downUntil != 0 && now - p.downUntil < 0) {
        continue;
      }
      if (p.channel == null) {
        try {
          p.channel = transport.connect(p.path.address());
          p.downUntil = 0;
        } catch (IOException | RuntimeException e) {
          markDownLocked(p, e);
          continue;
        }
      }
      out.add(p);
    }
    return out;
  }

  private synchronized void markDown(Path p, PeerChannel failed, Throwable why) {
    if (p.channel != failed) {
      return; // already replaced after an earlier failure
    }
    markDownLocked(p, why);
  }

  private void markDownLocked(Path p, Throwable why) {
    p.failures.increment();
    PeerChannel failed = p.channel;
    p.channel = null; // first: closing fails its fetches, whose handlers come back here
    if (failed != null) {
      failed.close();
    }
    p.downUntil = System.nanoTime() + retryAfterNanos;
    if (p.downUntil == 0) {
      p.downUntil = 1;
    }
    LOG.warning(
        () ->
            "peer path "
                + p.path.address()
                + " dropped, retried in "
                + TimeUnit.NANOSECONDS.toMillis(retryAfterNanos)
                + " ms: "
                + why.getMessage());
  }

  @Override
  public CompletableFuture<boolean[]> fetch(String dataset, long[] ids, MemorySegment[] dsts) {
    CompletableFuture<boolean[]> trivial = PeerWire.trivialAnswer(ids, dsts);
    if (trivial != null) {
      return trivial;
    }
    boolean[] filled = new boolean[ids.length];
    return fetchOn(live(), dataset, ids, dsts, 0, ids.length, filled).thenApply(v -> filled);
  }

  /** Fetches {@code [from, to)} of the request over {@code live}, writing into {@code filled}. */
  private CompletableFuture<Void> fetchOn(
      List<Path> live,
      String dataset,
      long[] ids,
      MemorySegment[] dsts,
      int from,
      int to,
      boolean[] filled) {
    if (from == to) {
      return CompletableFuture.completedFuture(null);
    }
    if (live.isEmpty()) {
      return CompletableFuture.failedFuture(new PeerException(describe() + ": no path left"));
    }
    long total = 0;
    for (int i = from; i < to; i++) {
      total += dsts[i].byteSize();
    }
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    if (live.size() == 1 || total < MIN_STRIPE_BYTES || to - from == 1) {
      parts.add(share(pick(live), live, dataset, ids, dsts, from, to, filled));
    } else {
      double weights = 0;
      for (Path p : live) {
        weights += p.path.weight();
      }
      int start = from;
      double target = 0;
      long taken = 0;
      for (int k = 0; k < live.size() && start < to; k++) {
        Path p = live.get(k);
        target += total * p.path.weight() / weights;
        int end = start;
        if (k == live.size() - 1) {
          end = to;
        } else {
          // Up to this path's share of the bytes, at least one sample, leaving one for each next
          // path.
          while (end < to - (live.size() - 1 - k)
              && (end == start || taken + dsts[end].byteSize() / 2.0 <= target)) {
            taken += dsts[end].byteSize();
            end++;
          }
        }
        parts.add(share(p, live, dataset, ids, dsts, start, end, filled));
        start = end;
      }
    }
    return CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new));
  }

  /** Smooth weighted round robin over the live paths for fetches too small to stripe. */
  private synchronized Path pick(List<Path> live) {
    if (live.size() == 1) {
      return live.getFirst();
    }
    double weights = 0;
    Path best = null;
    for (Path p : live) {
      p.credit += p.path.weight();
      weights += p.path.weight();
      if (best == null || p.credit > best.credit) {
        best = p;
      }
    }
    best.credit -= weights;
    return best;
  }

  /** One path's share; on failure the path is dropped and the share redone on the others. */
  private CompletableFuture<Void> share(
      Path p,
      List<Path> live,
      String dataset,
      long[] ids,
      MemorySegment[] dsts,
      int from,
      int to,
      boolean[] filled) {
    PeerChannel ch;
    synchronized (this) {
      ch = p.channel;
    }
    if (ch == null) { // dropped meanwhile
      return fetchOn(without(live, p), dataset, ids, dsts, from, to, filled);
    }
    long[] subIds = Arrays.copyOfRange(ids, from, to);
    MemorySegment[] subDsts = Arrays.copyOfRange(dsts, from, to);
    CompletableFuture<boolean[]> fetch;
    try {
      fetch = ch.fetch(dataset, subIds, subDsts);
    } catch (RuntimeException e) {
      fetch = CompletableFuture.failedFuture(new PeerException(ch.describe() + ": " + e, e));
    }
    return fetch
        .handle(
            (got, error) -> {
              if (error == null) {
                long bytes = 0;
                for (int i = 0; i < got.length; i++) {
                  filled[from + i] = got[i];
                  if (got[i]) {
                    bytes += subDsts[i].byteSize();
                  }
                }
                p.bytes.add(bytes);
                return CompletableFuture.<Void>completedFuture(null);
              }
              Throwable cause = error instanceof CompletionException ce ? ce.getCause() : error;
              if (!(cause instanceof PeerException)) {
                return CompletableFuture.<Void>failedFuture(cause); // a caller's mistake: no redo
              }
              markDown(p, ch, cause);
              return fetchOn(without(live, p), dataset, ids, dsts, from, to, filled);
            })
        .thenCompose(f -> f);
  }

  private static List<Path> without(List<Path> live, Path p) {
    List<Path> rest = new ArrayList<>(live);
    rest.remove(p);
    return rest;
  }

  @Override
  public synchronized void close() {
    closed = true;
    for (Path p : paths) {
      if (p.channel != null) {
        p.channel.close();
        p.channel = null;
      }
    }
  }
}
