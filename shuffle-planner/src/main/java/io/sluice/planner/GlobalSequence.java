package io.sluice.planner;

/**
 * The world-size-independent order of one epoch: position → sample id, for a (layout, seed, epoch,
 * mode). Immutable; safe to share between threads.
 *
 * <p>Implementation notes. {@code global} is a keyed pseudo-random permutation of {@code [0, N)}
 * built as format-preserving encryption: a four-round Feistel network over the smallest power of
 * two {@code >= N} with cycle walking (Black and Rogaway, "Ciphers with Arbitrary Finite Domains",
 * CT-RSA 2002; see {@link FeistelPermutation}). It needs no table and no sort, so {@code sampleAt}
 * and {@code positionOf} are O(1) in time and memory for N up to 2^62. {@code block} follows the
 * spirit of MosaicML Streaming's py1b/py1e shuffles: shards are shuffled, cut into blocks of k
 * shards, and samples are shuffled within a block only, so a reader needs only k shards resident at
 * once (Streaming shuffles within fixed-size sample blocks of shuffled shards; ours cut at shard
 * boundaries so a shard is never split over two blocks). {@code shard} shuffles the shard order
 * only; {@code none} is manifest order. The rank split on top of a sequence ({@link EpochPlan})
 * pads like PyTorch's {@code DistributedSampler}.
 *
 * <p>Keys are SplitMix64 hashes of (seed, epoch, purpose, index): only integer arithmetic, no
 * {@code java.util.Random}, no hash-iteration order, so the same inputs give the same order on
 * every JVM and machine, and different epochs give unrelated orders.
 */
public final class GlobalSequence {
  private final DatasetLayout layout;
  private final long seed;
  private final long epoch;
  private final ShuffleMode mode;
  private final long size;

  /** Non-null for global mode only. */
  private final FeistelPermutation feistel;

  /** Non-null for block and shard modes only. */
  private final ShardBlockOrder shardOrder;

  private GlobalSequence(DatasetLayout layout, long seed, long epoch, ShuffleMode mode) {
    this.layout = layout;
    this.seed = seed;
    this.epoch = epoch;
    this.mode = mode;
    this.size = layout.totalSamples();
    FeistelPermutation f = null;
    ShardBlockOrder o = null;
    switch (mode) {
      case ShuffleMode.Global _ ->
          f = new FeistelPermutation(size, Keys.key(seed, epoch, Keys.PURPOSE_GLOBAL, 0));
      case ShuffleMode.Block b ->
          o = new ShardBlockOrder(layout, seed, epoch, b.shardsPerBlock(), true);
      case ShuffleMode.Shard _ -> o = new ShardBlockOrder(layout, seed, epoch, 1, false);
      case ShuffleMode.None _ -> {}
    }
    this.feistel = f;
    this.shardOrder = o;
  }

  /**
   * The sequence of {@code layout} for {@code (seed, epoch, mode)}. Any seed and epoch are legal
   * (including negative ones); the order depends on nothing else.
   */
  public static GlobalSequence of(DatasetLayout layout, long seed, long epoch, ShuffleMode mode) {
    if (layout == null) {
      throw new IllegalArgumentException("layout=null must be non-null");
    }
    if (mode == null) {
      throw new IllegalArgumentException("shuffle=null must be one of global, block, shard, none");
    }
    return new GlobalSequence(layout, seed, epoch, mode);
  }

  /** N, the number of positions: {@code layout().totalSamples()}. */
  public long size() {
    return size;
  }

  public DatasetLayout layout() {
    return layout;
  }

  public long seed() {
    return seed;
  }

  public long epoch() {
    return epoch;
  }

  public ShuffleMode mode() {
    return mode;
  }

  /** The sample id at {@code position}, which must be in {@code [0, size())}. */
  public long sampleAt(long position) {
    if (position < 0 || position >= size) {
      throw new IllegalArgumentException(
          "position=" + position + " must be in [0, size=" + size + ")");
    }
    return unchecked(position);
  }

  /**
   * Writes the sample ids at positions {@code [fromPosition, fromPosition + length)} into {@code
   * dst[offset..offset + length)}; the positions must lie in {@code [0, size())}. Same results as
   * {@link #sampleAt} at several times the throughput: the bulk path {@link EpochPlan#fill} uses.
   */
  public void sampleRange(long fromPosition, long[] dst, int offset, int length) {
    if (length < 0 || offset < 0 || offset > dst.length - length) {
      throw new IllegalArgumentException(
          "offset=" + offset + " length=" + length + " must fit dst.length=" + dst.length);
    }
    if (fromPosition < 0 || fromPosition > size - length) {
      throw new IllegalArgumentException(
          "fromPosition="
              + fromPosition
              + " length="
              + length
              + " must lie in [0, size="
              + size
              + ")");
    }
    if (feistel != null) {
      feistel.applyRange(fromPosition, dst, offset, length);
    } else if (shardOrder != null) {
      shardOrder.sampleRange(fromPosition, dst, offset, length);
    } else {
      for (int i = 0; i < length; i++) {
        dst[offset + i] = fromPosition + i;
      }
    }
  }

  /** The position of {@code sampleId} (the exact inverse of {@link #sampleAt}). */
  public long positionOf(long sampleId) {
    if (sampleId < 0 || sampleId >= size) {
      throw new IllegalArgumentException(
          "sampleId=" + sampleId + " must be in [0, size=" + size + ")");
    }
    if (feistel != null) {
      return feistel.inverse(sampleId);
    }
    if (shardOrder != null) {
      return shardOrder.positionOf(sampleId);
    }
    return sampleId;
  }

  private long unchecked(long position) {
    if (feistel != null) {
      return feistel.apply(position);
    }
    if (shardOrder != null) {
      return shardOrder.sampleAt(position);
    }
    return position;
  }

  @Override
  public String toString() {
    return "GlobalSequence{"
        + layout
        + ", seed="
        + seed
        + ", epoch="
        + epoch
        + ", shuffle="
        + mode.wireName()
        + "}";
  }
}
