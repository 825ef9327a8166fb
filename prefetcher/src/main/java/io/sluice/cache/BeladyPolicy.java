package io.sluice.cache;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * Belady's MIN over the plan: evicts the unpinned sample whose next use is farthest in the future
 * ({@link NextUse#NEVER} first), ties going to the larger sample (by power-of-two size class), then
 * to the sample that became a candidate last. See the implementation notes in {@link SampleCache}.
 * Not thread-safe: the cache calls it under its lock.
 */
public final class BeladyPolicy implements EvictionPolicy {
  /**
   * The candidates of one next-use step: a list per size class, newest first. Most buckets only
   * ever hold one class (and with Belady about one bucket opens per sample read: a consumed sample
   * needed later than every other candidate is the next victim), so the 64 heads are allocated only
   * when a second class arrives.
   */
  static final class Bucket {
    long step;
    long classes; // bit c set when class c has nodes
    PolicyNode[] heads; // by size class; null while one class at most has been here
    int onlyClass = -1; // while heads is null: the class of only
    PolicyNode only;
    Bucket nextSpare; // in the candidates' list of emptied buckets

    Bucket(long step) {
      this.step = step;
    }

    /** Empties this bucket for reuse at {@code step}. */
    void reset(long step) {
      this.step = step;
      classes = 0;
      heads = null;
      onlyClass = -1;
      only = null;
    }

    PolicyNode head(int sizeClass) {
      return heads != null ? heads[sizeClass] : sizeClass == onlyClass ? only : null;
    }

    void setHead(int sizeClass, PolicyNode n) {
      if (heads == null) {
        if (only == null || onlyClass == sizeClass) {
          onlyClass = sizeClass;
          only = n;
          return;
        }
        heads = new PolicyNode[64];
        heads[onlyClass] = only;
        only = null;
      }
      heads[sizeClass] = n;
    }

    PolicyNode largestNewest() {
      return head(63 - Long.numberOfLeadingZeros(classes));
    }

    PolicyNode smallestNewest() {
      return head(Long.numberOfTrailingZeros(classes));
    }
  }

  private NextUse nextUse;
  private int plan; // counts replans: a last use recorded under an older plan means nothing now
  private long currentStep;
  private boolean attached;
  // The nodes of samples inserted by id (onInsert), for the calls that name a sample by id. The
  // cache passes tokens instead, and its nodes are not indexed: a map insertion and removal per
  // sample read were a third of the cache's work on a miss.
  private LongMap<PolicyNode> byId;
  private final Candidates candidates = new Candidates();
  // Samples inserted or unpinned since a victim was last asked for, oldest first. Keying them
  // (a next-use computation and a bucket look-up each) waits until a victim is needed: a cache
  // with room never asks, and there that work was a third of a stream's time. A key computed
  // late is the one an early key would have become by now: uses before the current step are
  // skipped either way (advanceTo recomputes stale keys).
  //
  // Once a victim has been asked for, the cache is full and will be asked again: the list is
  // then keyed whenever it reaches BACKLOG nodes. Left to the next victim, the samples a stream
  // consumes while the read-ahead needs no room (with Belady, most of an epoch: the samples the
  // cache lacks are the ones the epoch uses last) were keyed all at once, 450k of them in 80 ms
  // under the cache's lock while every stream waited. 64k bounds that at about 12 ms. A backlog
  // of 4k, keyed more often by the threads that release and insert, cost the daemon a tenth
  // more CPU per sample on the delivery benchmark; 64k cost nothing measurable.
  static final int BACKLOG = 1 << 16;
  private final int backlog;
  private PolicyNode waitingHead;
  private PolicyNode waitingTail;
  private int waitingCount;
  private boolean pressured;

  /**
   * The unpinned nodes, bucketed by next-use step (a step's samples share one), each bucket a
   * linked list per size class. Adding and removing a node is a hash lookup and a few links; the
   * ordered map of buckets changes only when a bucket appears or empties (about once per step, not
   * once per sample). A tree of every node, and later a tree per step, cost a third to a half of a
   * stream thread's time: a batch's pins and unpins are two updates per sample.
   */
  private static final class Candidates {
    private final LongMap<Bucket> byStep = new LongMap<>();
    private final TreeMap<Long, Bucket> ordered = new TreeMap<>();
    // The buckets of the smallest and largest step, kept beside the tree: a victim is asked for on
    // every miss of a full cache, and a walk down the tree for each was a few percent of a stream.
    private Bucket firstBucket;
    private Bucket lastBucket;
    private Bucket spare; // emptied buckets, linked through nextSpare
    private int size;

    void add(PolicyNode n) {
      Bucket b = byStep.get(n.nextUseStep);
      if (b == null) {
        b = newBucket(n.nextUseStep);
        byStep.put(n.nextUseStep, b);
        ordered.put(n.nextUseStep, b);
        if (firstBucket == null || b.step < firstBucket.step) {
          firstBucket = b;
        }
        if (lastBucket == null || b.step > lastBucket.step) {
          lastBucket = b;
        }
      }
      PolicyNode head = b.head(n.sizeClass);
      n.prev = null;
      n.next = head;
      if (head != null) {
        head.prev = n;
      }
      b.setHead(n.sizeClass, n);
      b.classes |= 1L << n.sizeClass;
      n.bucket = b;
      size++;
    }

    void remove(PolicyNode n) {
      if (n == null || n.bucket == null) {
        return;
      }
      Bucket b = n.bucket;
      if (n.prev != null) {
        n.prev.next = n.next;
      } else {
        b.setHead(n.sizeClass, n.next);
        if (n.next == null) {
          b.classes &= ~(1L << n.sizeClass);
        }
      }
      if (n.next != null) {
        n.next.prev = n.prev;
      }
      n.prev = null;
      n.next = null;
      n.bucket = null;
      size--;
      if (b.classes == 0) {
        drop(b);
        if (b == firstBucket) {
          var e = ordered.firstEntry();
          firstBucket = e == null ? null : e.getValue();
        }
        if (b == lastBucket) {
          var e = ordered.lastEntry();
          lastBucket = e == null ? null : e.getValue();
        }
      }
    }

    /** A bucket for {@code step}: an emptied one when there is one (see {@link #drop}). */
    private Bucket newBucket(long step) {
      Bucket b = spare;
      if (b == null) {
        return new Bucket(step);
      }
      spare = b.nextSpare;
      b.nextSpare = null;
      b.reset(step);
      return b;
    }

    /**
     * Takes an emptied bucket out of the order and keeps it for the next step that needs one.
     * Buckets live for about an epoch, long enough to be promoted, and every keyed node points at
     * one: new ones were hundreds of thousands of old-to-young references for each young collection
     * to scan. The caller mends firstBucket and lastBucket.
     */
    private void drop(Bucket b) {
      byStep.remove(b.step);
      ordered.remove(b.step);
      b.nextSpare = spare;
      spare = b;
    }

    boolean isEmpty() {
      return size == 0;
    }

    PolicyNode first() {
      return firstBucket.smallestNewest();
    }

    PolicyNode last() {
      return lastBucket.largestNewest();
    }

    PolicyNode pollFirst() {
      PolicyNode n = first();
      remove(n);
      return n;
    }

    /** Calls {@code action} with every candidate node. */
    void forEachNode(java.util.function.Consumer<PolicyNode> action) {
      byStep.forEachValue(
          b -> {
            for (long cs = b.classes; cs != 0; cs &= cs - 1) {
              for (PolicyNode n = b.head(Long.numberOfTrailingZeros(cs)); n != null; n = n.next) {
                action.accept(n);
              }
            }
          });
    }

    /**
     * Takes out every node whose bucket's step is outside {@code [from, until)} and hands it to
     * {@code action}: whole buckets from both ends of the order, so the kept ones are not visited.
     */
    void removeOutside(long from, long until, java.util.function.Consumer<PolicyNode> action) {
      List<Bucket> out = new ArrayList<>(ordered.headMap(from).values());
      out.addAll(ordered.tailMap(until).values());
      for (Bucket b : out) {
        for (long cs = b.classes; cs != 0; cs &= cs - 1) {
          PolicyNode n = b.head(Long.numberOfTrailingZeros(cs));
          while (n != null) {
            PolicyNode next = n.next; // the action relinks n
            n.prev = n.next = null;
            n.bucket = null;
            size--;
            action.accept(n);
            n = next;
          }
        }
        drop(b);
      }
      var first = ordered.firstEntry();
      var last = ordered.lastEntry();
      firstBucket = first == null ? null : first.getValue();
      lastBucket = last == null ? null : last.getValue();
    }

    /**
     * Forgets every bucket. The nodes' links need no reset: a pinned node left the candidates when
     * it was pinned (its links are null) and {@link #add} overwrites an unpinned one's.
     */
    void clear() {
      byStep.clear();
      ordered.clear();
      firstBucket = lastBucket = null;
      size = 0;
    }
  }

  /** A policy asking {@code nextUse}; the cache starts at step 0. */
  public BeladyPolicy(NextUse nextUse) {
    this(nextUse, BACKLOG);
  }

  /** As above, a full cache keying its waiting list when it reaches {@code backlog}. For tests. */
  BeladyPolicy(NextUse nextUse, int backlog) {
    if (nextUse == null) {
      throw new IllegalArgumentException("nextUse=null must be non-null");
    }
    if (backlog < 1) {
      throw new IllegalArgumentException("backlog=" + backlog + " must be >= 1");
    }
    this.nextUse = nextUse;
    this.backlog = backlog;
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
    if (byId == null) {
      byId = new LongMap<>();
    }
    byId.put(sampleId, (PolicyNode) onInsertToken(sampleId, sizeBytes));
  }

  @Override
  public Object onInsertToken(long sampleId, long sizeBytes) {
    return onInsertNode(new PolicyNode(sampleId), sizeBytes);
  }

  @Override
  public Object onInsertNode(PolicyNode node, long sizeBytes) {
    node.sizeClass = 63 - Long.numberOfLeadingZeros(Math.max(1, sizeBytes));
    await(node);
    keyBacklog();
    return node;
  }

  /** The node of a sample inserted by id; throws naming it when there is none. */
  private PolicyNode byId(long sampleId) {
    PolicyNode n = byId == null ? null : byId.get(sampleId);
    if (n == null) {
      throw new IllegalArgumentException(
          "sampleId=" + sampleId + " was not inserted by id (onInsert) or was removed");
    }
    return n;
  }

  @Override
  public void onPin(long sampleId) {
    onPin(sampleId, byId(sampleId));
  }

  @Override
  public void onPin(long sampleId, Object token) {
    leaveCandidates((PolicyNode) token);
  }

  @Override
  public void onHit(long sampleId) {
    onHit(sampleId, byId(sampleId));
  }

  @Override
  public void onHit(long sampleId, Object token) {
    PolicyNode n = (PolicyNode) token;
    n.lastUseStep = currentStep;
    n.lastUsePlan = plan;
  }

  @Override
  public void onUnpin(long sampleId) {
    onUnpin(sampleId, byId(sampleId));
  }

  @Override
  public void onUnpin(long sampleId, Object token) {
    await((PolicyNode) token);
    keyBacklog();
  }

  @Override
  public void onRemove(long sampleId) {
    PolicyNode n = byId == null ? null : byId.get(sampleId);
    if (n != null) {
      onRemove(sampleId, n);
    }
  }

  @Override
  public void onRemove(long sampleId, Object token) {
    if (byId != null) {
      byId.remove(sampleId);
    }
    leaveCandidates((PolicyNode) token);
  }

  @Override
  public long victim() {
    PolicyNode n = victimNode();
    return n == null ? NO_VICTIM : n.sampleId;
  }

  @Override
  public PolicyNode victimNode() {
    pressured = true;
    keyWaiting();
    return candidates.isEmpty() ? null : candidates.last();
  }

  @Override
  public long victimNextUse() {
    PolicyNode n = victimNode();
    return n == null ? NextUse.NEVER : n.nextUseStep;
  }

  /** Takes a node out of the waiting list or the candidates, wherever it is. */
  private void leaveCandidates(PolicyNode n) {
    if (n.waiting) {
      stopWaiting(n);
    } else {
      candidates.remove(n);
    }
  }

  /** Puts an unpinned node at the end of the waiting list. */
  private void await(PolicyNode n) {
    n.waiting = true;
    n.bucket = null; // after a replan it names a dropped bucket: let that go
    n.prev = waitingTail;
    n.next = null;
    if (waitingTail != null) {
      waitingTail.next = n;
    } else {
      waitingHead = n;
    }
    waitingTail = n;
    waitingCount++;
  }

  /** Keys the waiting list when the cache is full and the list has reached its backlog. */
  private void keyBacklog() {
    if (pressured && waitingCount >= backlog) {
      keyWaiting();
    }
  }

  private void stopWaiting(PolicyNode n) {
    if (n.prev != null) {
      n.prev.next = n.next;
    } else {
      waitingHead = n.next;
    }
    if (n.next != null) {
      n.next.prev = n.prev;
    } else {
      waitingTail = n.prev;
    }
    n.prev = n.next = null;
    n.waiting = false;
    waitingCount--;
  }

  /** Keys every waiting node into the candidates, oldest first (as each became one). */
  private void keyWaiting() {
    PolicyNode n = waitingHead;
    waitingHead = waitingTail = null;
    waitingCount = 0;
    while (n != null) {
      PolicyNode next = n.next;
      n.waiting = false;
      // It was used at lastUseStep (-1: not under this plan); its next use is after that, not in
      // the past.
      long lastUse = n.lastUsePlan == plan ? n.lastUseStep : -1;
      n.nextUseStep = nextUse.nextUseStep(n.sampleId, Math.max(currentStep, lastUse + 1));
      candidates.add(n); // sets n's links anew
      n = next;
    }
  }

  @Override
  public void advanceTo(long step) {
    currentStep = step;
    // Keys before the current step are uses that did not happen through this cache (the sample
    // was read around it, or the step was skipped): recompute them, smallest first.
    List<PolicyNode> stale = new ArrayList<>();
    while (!candidates.isEmpty() && candidates.first().nextUseStep < step) {
      stale.add(candidates.pollFirst());
    }
    for (PolicyNode n : stale) {
      n.nextUseStep = nextUse.nextUseStep(n.sampleId, step);
      candidates.add(n);
    }
  }

  @Override
  public void replan(NextUse nextUse, long currentStep) {
    this.nextUse = nextUse;
    this.currentStep = currentStep;
    plan++; // every last use recorded so far was a step of the old plan
    // Every candidate waits to be keyed under the new plan, like one just unpinned, after those
    // waiting already.
    List<PolicyNode> keyed = new ArrayList<>(candidates.size);
    candidates.forEachNode(keyed::add);
    candidates.clear();
    for (PolicyNode n : keyed) {
      await(n);
    }
  }

  /**
   * Keeps every candidate keyed in {@code [keptFrom, keptUntil)} where it is: at an epoch boundary
   * that is every sample the new epoch uses, and re-keying each of them (a next-use computation and
   * a bucket look-up, under the cache's lock) held the streams for a pause that grew with the
   * cache: about 90 ms for 450k samples. The rest wait to be keyed under the new plan. Last uses
   * keep their meaning: the steps are numbered as before.
   */
  @Override
  public void replan(NextUse nextUse, long currentStep, long keptFrom, long keptUntil) {
    this.nextUse = nextUse;
    this.currentStep = currentStep;
    candidates.removeOutside(keptFrom, keptUntil, this::await);
  }

  /** Nodes waiting to be keyed. For tests. */
  int waitingCount() {
    return waitingCount;
  }

  /** The next-use step the policy holds for a candidate, or -1 when it is not one. For tests. */
  long nextUseOf(long sampleId) {
    keyWaiting();
    long[] found = {-1};
    candidates.forEachNode(
        n -> {
          if (n.sampleId == sampleId) {
            found[0] = n.nextUseStep;
          }
        });
    return found[0];
  }
}
