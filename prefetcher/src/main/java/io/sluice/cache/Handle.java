package io.sluice.cache;

import java.lang.foreign.MemorySegment;

/**
 * A pinned cached sample: its bytes stay where they are, and the sample stays cached, until {@link
 * #close()}. The segment must not be used after that (the memory may then hold another sample).
 * Close it exactly once, from any thread; a second close does nothing.
 */
public final class Handle implements AutoCloseable {
  final SampleCache cache;
  final SampleCache.Entry entry; // another sample's once released and evicted: entries are reused
  private final long sampleId;
  private final MemorySegment segment;
  boolean released; // guarded by the cache's lock

  Handle(SampleCache cache, SampleCache.Entry entry, MemorySegment segment) {
    this.cache = cache;
    this.entry = entry;
    this.sampleId = entry.sampleId;
    this.segment = segment;
  }

  public long sampleId() {
    return sampleId;
  }

  /** The sample's bytes, read-only, exactly its length. */
  public MemorySegment segment() {
    return segment;
  }

  @Override
  public void close() {
    cache.release(this);
  }
}
