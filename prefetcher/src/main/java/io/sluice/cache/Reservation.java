package io.sluice.cache;

import java.lang.foreign.MemorySegment;

/**
 * Cache memory set aside for one sample, to be filled in place (a read straight into the cache) and
 * then {@link #commit() committed}. Until then the sample is invisible to readers and cannot be
 * evicted. {@link #close()} without a commit gives the memory back; after a commit it does nothing,
 * so use try-with-resources.
 */
public final class Reservation implements AutoCloseable {
  private final SampleCache cache;
  final SampleCache.Entry entry; // another sample's once aborted: entries are reused
  private final long sampleId;
  private final MemorySegment segment;
  boolean done; // committed or aborted; guarded by the cache's lock

  Reservation(SampleCache cache, SampleCache.Entry entry, MemorySegment segment) {
    this.cache = cache;
    this.entry = entry;
    this.sampleId = entry.sampleId;
    this.segment = segment;
  }

  public long sampleId() {
    return sampleId;
  }

  /** The memory to fill: writable, exactly the reserved length. Do not use it after commit. */
  public MemorySegment segment() {
    return segment;
  }

  /**
   * Publishes the sample: readers can pin it and the policy may evict it.
   *
   * @throws IllegalStateException when already committed or closed, or the cache is closed
   */
  public void commit() {
    cache.commit(this);
  }

  /** Gives the memory back unless committed. */
  @Override
  public void close() {
    cache.abort(this);
  }
}
