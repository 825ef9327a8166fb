package io.sluice.format;

/** Told after each shard is indexed, so a terminal can show progress. */
@FunctionalInterface
public interface IndexProgress {
  IndexProgress NONE = (done, total, bytes) -> {};

  void shardIndexed(int done, int total, long bytesSoFar);
}
