package io.sluice.cache;

/**
 * A cached sample as {@link BeladyPolicy} keeps it: its id and the policy's per-candidate fields.
 * {@link SampleCache}'s entries are policy nodes, handed to the policy at {@link
 * EvictionPolicy#onInsertNode}, so the policy's state for a sample lives in the cache's own record:
 * one object per cached sample instead of two (each lives until evicted, so young collections
 * copied both) and one cache miss fewer on every pin, release and eviction. The fields belong to
 * the policy the node was inserted into and are touched only under the cache's lock.
 */
class PolicyNode {
  long sampleId; // set anew only when the cache reuses its entry for another sample
  int sizeClass; // power-of-two class of the sample's allocated bytes
  long nextUseStep; // the key in the candidates; change it only while the node is out of them
  long lastUseStep = -1; // valid while lastUsePlan is the policy's plan, else -1
  int lastUsePlan;
  boolean waiting; // in the waiting list: unpinned, not yet keyed into the candidates
  BeladyPolicy.Bucket bucket; // the candidates' bucket holding this node, or null
  PolicyNode prev; // links in the bucket's list or in the waiting list
  PolicyNode next;

  PolicyNode(long sampleId) {
    this.sampleId = sampleId;
  }

  /** Makes this node a new one for {@code sampleId}, as the constructor would. */
  void reset(long sampleId) {
    this.sampleId = sampleId;
    sizeClass = 0;
    nextUseStep = 0;
    lastUseStep = -1;
    lastUsePlan = 0;
    waiting = false;
    bucket = null;
    prev = next = null;
  }
}
