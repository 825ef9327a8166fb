package io.sluice.planner;

/**
 * How one epoch's global sequence orders the samples. A closed set: {@link Global} (uniform keyed
 * permutation of all samples), {@link Block} (shuffled groups of shards, samples shuffled within a
 * group), {@link Shard} (shuffled shard order, samples in order) and {@link None} (manifest order).
 * See docs/planner.md for the I/O cost of each.
 */
public sealed interface ShuffleMode {
  /** The shards per block the daemon uses when a request names {@code block} without a size. */
  int DEFAULT_SHARDS_PER_BLOCK = 4;

  /** Every sample anywhere: a keyed pseudo-random permutation of all N samples. */
  record Global() implements ShuffleMode {
    @Override
    public String wireName() {
      return "global";
    }
  }

  /**
   * Shards in a keyed random order, grouped {@code shardsPerBlock} at a time; samples permuted
   * within each group. Only {@code shardsPerBlock} shards are hot at once.
   */
  record Block(int shardsPerBlock) implements ShuffleMode {
    public Block {
      if (shardsPerBlock < 1) {
        throw new IllegalArgumentException("shards_per_block=" + shardsPerBlock + " must be >= 1");
      }
    }

    @Override
    public String wireName() {
      return "block";
    }
  }

  /** Shards in a keyed random order, samples in manifest order within each shard. */
  record Shard() implements ShuffleMode {
    @Override
    public String wireName() {
      return "shard";
    }
  }

  /** Manifest order. */
  record None() implements ShuffleMode {
    @Override
    public String wireName() {
      return "none";
    }
  }

  /**
   * The mode named {@code name} ({@code "global" | "block" | "shard" | "none"}, exact lower case).
   * {@code shardsPerBlock} is used by {@code block} only, and must be >= 1 there.
   */
  static ShuffleMode parse(String name, int shardsPerBlock) {
    if (name == null) {
      throw new IllegalArgumentException("shuffle=null must be one of global, block, shard, none");
    }
    return switch (name) {
      case "global" -> new Global();
      case "block" -> new Block(shardsPerBlock);
      case "shard" -> new Shard();
      case "none" -> new None();
      default ->
          throw new IllegalArgumentException(
              "shuffle=" + name + " must be one of global, block, shard, none");
    };
  }

  /** The name on the wire and in configuration: {@code "global"} etc. */
  String wireName();
}
