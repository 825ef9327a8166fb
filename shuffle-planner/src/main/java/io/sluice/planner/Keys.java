package io.sluice.planner;

/**
 * Derives permutation keys from (seed, epoch, purpose, index) with integer arithmetic only, so
 * every JVM on every machine derives the same keys.
 */
final class Keys {
  /** The 64-bit golden ratio, SplitMix64's increment. */
  static final long GOLDEN = 0x9E3779B97F4A7C15L;

  static final long PURPOSE_GLOBAL = 0x676C6F62616C0001L;
  static final long PURPOSE_SHARD_ORDER = 0x7368617264000002L;
  static final long PURPOSE_BLOCK = 0x626C6F636B000003L;

  private Keys() {}

  /** SplitMix64's finalizer (Stafford's variant 13): a bijective 64-bit mixer. */
  static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  /** The key of one permutation of one epoch; distinct purposes and indexes give unrelated keys. */
  static long key(long seed, long epoch, long purpose, long index) {
    long h = mix64(seed + GOLDEN);
    h = mix64(h ^ (epoch + 2 * GOLDEN));
    h = mix64(h ^ (purpose + 3 * GOLDEN));
    return mix64(h ^ (index + 4 * GOLDEN));
  }
}
