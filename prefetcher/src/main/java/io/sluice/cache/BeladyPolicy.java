package io.sluice.cache;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Belady's MIN over the plan: evicts the unpinned sample whose next use is farthest in the future
 * ({@link NextUse#NEVER} first), ties going to the larger sample, then the larger id. See the
 * implementation notes in {@link SampleCache}. Not thread-safe: the cache calls it under its lock.
 */
public final class BeladyPolicy implements EvictionPolicy {
  /** Ordered by next use, then size, then id: the last node is the victim. */
  private static final class Node implements Comparable<Node> {
    final long sampleId;
    final long sizeBytes;
    long nextUseStep; // the key in candidates; change it only while the node is out of the tree
    long lastUseStep = -1;
    boolean pinned;

    Node(long sampleId, long sizeBytes) {
      this.sampleId = sampleId;
      this.sizeBytes = sizeBytes;
    }

    @Override
    public int compareTo(Node o) {
      int c = Long.compare(nextUseStep, o.nextUseStep);
      if (c == 0) {
        c = Long.compare(sizeBytes, o.sizeBytes);
      }
      return c != 0 ? c : Long.compare(sampleId, o.sampleId);
    }
  }

  private NextUse nextUse;
  private long currentStep;
  private boolean attached;
  private final HashMap<Long, Node> nodes = new HashMap<>();
  private final Candidates candidates = new Candidates();

  /**
   * The unpinned nodes, ordered as {@link Node#compareTo}: bucketed by next-use step (a step's
   * samples share one), each bucket a small ordered set. Most adds and removes find their bucket in
   * a hash map and touch only that bucket; the ordered map of buckets changes only when a bucket
   * appears or empties. A single tree of every node cost about half a stream thread's time (a
   * batch's pins and unpins are two tree operations per sample, each walking ~18 levels).
   */
  private static final class Candidates {
    private final HashMap<Long, TreeSet<Node>> byStep = new HashMap<>();
    private final TreeMap<Long, TreeSet<Node>> ordered = new TreeMap<>();
    private int size;

    void add(Node n) {
      TreeSet<Node> b = byStep.get(n.nextUseStep);
      if (b == null) {
        b = new TreeSet<>();
        byStep.put(n.nextUseStep, b);
        ordered.put(n.nextUseStep, b);
      }
      if (b.add(n)) {
        size++;
      }
    }

    void remove(Node n) {
      if (n == null) {
        return;
      }
      TreeSet<Node> b = byStep.get(n.nextUseStep);
      if (b != null && b.remove(n)) {
        size--;
        if (b.isEmpty()) {
          byStep.remove(n.nextUseStep);
          ordered.remove(n.nextUseStep);
        }
      }
    }

    boolean isEmpty() {
      return size == 0;
    }

    Node first() {
      return ordered.firstEntry().getValue().first();
    }

    Node last() {
      return ordered.lastEntry().getValue().last();
    }

    Node pollFirst() {
      Map.Entry<Long, TreeSet<Node>> e = ordered.firstEntry();
      Node n = e.getValue().pollFirst();
      size--;
      if (e.getValue().isEmpty()) {
        byStep.remove(e.getKey());
        ordered.remove(e.getKey());
      }
      return n;
    }

    void clear() {
      byStep.clear();
      ordered.clear();
      size = 0;
    }
  }

  /** A policy asking {@code nextUse}; the cache starts at step 0. */
  public BeladyPolicy(NextUse nextUse) {
    if (nextUse == null) {
      throw new IllegalArgumentException("nextUse=null must be non-null");
    }
    this.nextUse = nextUse;
  }

  @Override
  public String name() {
    return "belady";
  }

  @Override
  public void attach(long budgetBytes) {
    if (attached) {
      throw new IllegalStateException("policy=belady is already attached to a cache");
    }
    attached = true;
  }

  @Override
  public void onInsert(long sampleId, long sizeBytes) {
    onInsertToken(sampleId, sizeBytes);
  }

  @Override
  public Object onInsertToken(long sampleId, long sizeBytes) {
    Node n = new Node(sampleId, sizeBytes);
    // A sample put at step t is typically needed at t (a demand miss) or later (a prefetch).
    n.nextUseStep = nextUse.nextUseStep(sampleId, currentStep);
    nodes.put(sampleId, n);
    candidates.add(n);
    return n;
  }

  @Override
  public void onPin(long sampleId) {
    onPin(sampleId, nodes.get(sampleId));
  }

  @Override
  public void onPin(long sampleId, Object token) {
    Node n = (Node) token;
    candidates.remove(n);
    n.pinned = true;
  }

  @Override
  public void onHit(long sampleId) {
    onHit(sampleId, nodes.get(sampleId));
  }

  @Override
  public void onHit(long sampleId, Object token) {
    ((Node) token).lastUseStep = currentStep;
  }

  @Override
  public void onUnpin(long sampleId) {
    onUnpin(sampleId, nodes.get(sampleId));
  }

  @Override
  public void onUnpin(long sampleId, Object token) {
    Node n = (Node) token;
    n.pinned = false;
    // It was used at lastUseStep; its next use is after that one, and not in the past.
    n.nextUseStep = nextUse.nextUseStep(sampleId, Math.max(currentStep, n.lastUseStep + 1));
    candidates.add(n);
  }

  @Override
  public void onRemove(long sampleId) {
    candidates.remove(nodes.remove(sampleId));
  }

  @Override
  public void onRemove(long sampleId, Object token) {
    nodes.remove(sampleId);
    candidates.remove((Node) token);
  }

  @Override
  public long victim() {
    return candidates.isEmpty() ? NO_VICTIM : candidates.last().sampleId;
  }

  @Override
  public long victimNextUse() {
    return candidates.isEmpty() ? NextUse.NEVER : candidates.last().nextUseStep;
  }

  @Override
  public void advanceTo(long step) {
    currentStep = step;
    // Keys before the current step are uses that did not happen through this cache (the sample
    // was read around it, or the step was skipped): recompute them, smallest first.
    List<Node> stale = new ArrayList<>();
    while (!candidates.isEmpty() && candidates.first().nextUseStep < step) {
      stale.add(candidates.pollFirst());
    }
    for (Node n : stale) {
      n.nextUseStep = nextUse.nextUseStep(n.sampleId, step);
      candidates.add(n);
    }
  }

  @Override
  public void replan(NextUse nextUse, long currentStep) {
    this.nextUse = nextUse;
    this.currentStep = currentStep;
    candidates.clear();
    for (Node n : nodes.values()) {
      n.lastUseStep = -1;
      if (!n.pinned) {
        n.nextUseStep = nextUse.nextUseStep(n.sampleId, currentStep);
        candidates.add(n);
      }
    }
  }

  /** The next-use step the policy holds for a candidate, or -1 when it is not one. For tests. */
  long nextUseOf(long sampleId) {
    Node n = nodes.get(sampleId);
    return n == null || n.pinned ? -1 : n.nextUseStep;
  }
}
