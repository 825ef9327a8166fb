package io.sluice.prefetch;

import io.sluice.cache.EvictionPolicy;

/** A policy handing every call to {@code inner}, for tests that watch or hold one of them. */
abstract class ForwardingPolicy implements EvictionPolicy {
  final EvictionPolicy inner;

  ForwardingPolicy(EvictionPolicy inner) {
    this.inner = inner;
  }

  @Override
  public String name() {
    return inner.name();
  }

  @Override
  public void attach(long budgetBytes) {
    inner.attach(budgetBytes);
  }

  @Override
  public void onInsert(long sampleId, long sizeBytes) {
    inner.onInsert(sampleId, sizeBytes);
  }

  @Override
  public void onPin(long sampleId) {
    inner.onPin(sampleId);
  }

  @Override
  public void onHit(long sampleId) {
    inner.onHit(sampleId);
  }

  @Override
  public void onUnpin(long sampleId) {
    inner.onUnpin(sampleId);
  }

  @Override
  public void onRemove(long sampleId) {
    inner.onRemove(sampleId);
  }

  @Override
  public long victim() {
    return inner.victim();
  }
}
