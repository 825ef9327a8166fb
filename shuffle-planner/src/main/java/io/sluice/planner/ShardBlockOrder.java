package io.sluice.planner;

/**
 * The order of the {@code block} and {@code shard} modes: shards in a keyed random order, cut into
 * consecutive blocks of k shards; within a block, samples either permuted by a Feistel network
 * keyed by (seed, epoch, block index) ({@code block}) or kept in manifest order ({@code shard}).
 * Memory is O(shardCount) (three arrays); per-block permutations are built on first use. Immutable
 * apart from that cache, whose entries are immutable and may be built twice by racing threads
 * without harm.
 */
final class ShardBlockOrder {
  private final DatasetLayout layout;
  private final int shardsPerBlock;
  private final boolean shuffleWithinBlock;
  private final long seed;
  private final long epoch;

  /** idShift[i] = first sample id of shuffled shard i minus its first sequence position. */
  private final long[] idShift;

  /** indexOf[shard] = its shuffled index. */
  private final int[] indexOf;

  /** seqStart[i] = sequence position of the first sample of shuffled shard i; [S] = N. */
  private final long[] seqStart;

  /** Lazily built within-block permutations (null entries until used; unused for shard mode). */
  private final FeistelPermutation[] blockPermutations;

  ShardBlockOrder(
      DatasetLayout layout, long seed, long epoch, int shardsPerBlock, boolean shuffleWithinBlock) {
    this.layout = layout;
    this.shardsPerBlock = shardsPerBlock;
    this.shuffleWithinBlock = shuffleWithinBlock;
    this.seed = seed;
    this.epoch = epoch;
    int shards = layout.shardCount();
    FeistelPermutation shardPermutation =
        new FeistelPermutation(shards, Keys.key(seed, epoch, Keys.PURPOSE_SHARD_ORDER, 0));
    this.idShift = new long[shards];
    this.indexOf = new int[shards];
    this.seqStart = new long[shards + 1];
    long position = 0;
    for (int i = 0; i < shards; i++) {
      int shard = (int) shardPermutation.apply(i);
      indexOf[shard] = i;
      seqStart[i] = position;
      idShift[i] = layout.firstSampleOf(shard) - position;
      position += layout.shardSampleCount(shard);
    }
    seqStart[shards] = position;
    int blocks = (int) ((shards + (long) shardsPerBlock - 1) / shardsPerBlock);
    this.blockPermutations = shuffleWithinBlock ? new FeistelPermutation[blocks] : null;
  }

  long sampleAt(long position) {
    int shards = indexOf.length;
    int index = DatasetLayout.lastAtOrBelow(seqStart, 0, shards, position);
    if (shuffleWithinBlock) {
      int block = index / shardsPerBlock;
      int firstIndex = block * shardsPerBlock;
      int endIndex = (int) Math.min((long) firstIndex + shardsPerBlock, shards);
      long blockStart = seqStart[firstIndex];
      long target = blockStart + blockPermutation(block).apply(position - blockStart);
      if (target < seqStart[index] || target >= seqStart[index + 1]) {
        index = DatasetLayout.lastAtOrBelow(seqStart, firstIndex, endIndex, target);
      }
      position = target;
    }
    return position + idShift[index];
  }

  /**
   * {@code sampleAt(from + i)} into {@code dst[offset + i]}, walking shards and blocks in order.
   */
  void sampleRange(long from, long[] dst, int offset, int length) {
    int shards = indexOf.length;
    int index = DatasetLayout.lastAtOrBelow(seqStart, 0, shards, from);
    long p = from;
    int at = offset;
    int end = offset + length;
    while (at < end) {
      if (shuffleWithinBlock) {
        int block = index / shardsPerBlock;
        int firstIndex = block * shardsPerBlock;
        int endIndex = (int) Math.min((long) firstIndex + shardsPerBlock, shards);
        long blockStart = seqStart[firstIndex];
        int run = (int) Math.min(end - at, seqStart[endIndex] - p);
        blockPermutation(block).applyRange(p - blockStart, dst, at, run);
        for (int i = at; i < at + run; i++) {
          long target = blockStart + dst[i];
          int t = firstIndex;
          if (endIndex - firstIndex <= 8) {
            while (target >= seqStart[t + 1]) {
              t++;
            }
          } else {
            t = DatasetLayout.lastAtOrBelow(seqStart, firstIndex, endIndex, target);
          }
          dst[i] = target + idShift[t];
        }
        at += run;
        p += run;
        index = endIndex;
      } else {
        int run = (int) Math.min(end - at, seqStart[index + 1] - p);
        long id = p + idShift[index];
        for (int i = 0; i < run; i++) {
          dst[at + i] = id + i;
        }
        at += run;
        p += run;
        index++;
      }
      while (index < shards && p >= seqStart[index + 1]) {
        index++; // skip empty shards
      }
    }
  }

  long positionOf(long sampleId) {
    int shard = layout.shardOf(sampleId);
    int index = indexOf[shard];
    long target = seqStart[index] + (sampleId - layout.firstSampleOf(shard));
    if (!shuffleWithinBlock) {
      return target;
    }
    int block = index / shardsPerBlock;
    long blockStart = seqStart[block * shardsPerBlock];
    return blockStart + blockPermutation(block).inverse(target - blockStart);
  }

  private FeistelPermutation blockPermutation(int block) {
    FeistelPermutation p = blockPermutations[block];
    if (p == null) {
      int firstIndex = block * shardsPerBlock;
      int endIndex = (int) Math.min((long) firstIndex + shardsPerBlock, indexOf.length);
      long size = seqStart[endIndex] - seqStart[firstIndex];
      // A block may hold only empty shards; then no position ever maps into it.
      p =
          new FeistelPermutation(
              Math.max(1, size), Keys.key(seed, epoch, Keys.PURPOSE_BLOCK, block));
      blockPermutations[block] = p;
    }
    return p;
  }
}
