package io.sluice.planner;

import java.util.SplittableRandom;

/** Deterministic random test cases shared by the property tests. */
final class Cases {
  private Cases() {}

  /** A layout of 1..maxShards shards, some empty, totalling at least one sample. */
  static DatasetLayout randomLayout(SplittableRandom random, int maxShards, long maxPerShard) {
    int shards = 1 + random.nextInt(maxShards);
    long[] counts = new long[shards];
    long total = 0;
    for (int i = 0; i < shards; i++) {
      counts[i] = random.nextInt(5) == 0 ? 0 : random.nextLong(maxPerShard + 1);
      total += counts[i];
    }
    if (total == 0) {
      counts[random.nextInt(shards)] = 1;
    }
    return DatasetLayout.ofShards(counts);
  }

  static ShuffleMode randomMode(SplittableRandom random) {
    return switch (random.nextInt(4)) {
      case 0 -> new ShuffleMode.Global();
      case 1 -> new ShuffleMode.Block(1 + random.nextInt(6));
      case 2 -> new ShuffleMode.Shard();
      default -> new ShuffleMode.None();
    };
  }

  static ShuffleMode[] allModes() {
    return new ShuffleMode[] {
      new ShuffleMode.Global(),
      new ShuffleMode.Block(1),
      new ShuffleMode.Block(3),
      new ShuffleMode.Block(4),
      new ShuffleMode.Shard(),
      new ShuffleMode.None()
    };
  }
}
