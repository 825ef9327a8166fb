package io.sluice.prefetch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class InFlightLimitTest {
  private long now;

  /**
   * Feeds {@code rounds} rounds of completions from a device serving {@code parallel} reads at once
   * in {@code serviceNanos} each: with n in flight it completes min(n, parallel) reads per service
   * time.
   */
  private int settle(InFlightLimit l, int parallel, long serviceNanos, int rounds) {
    for (int r = 0; r < rounds; r++) {
      int n = l.limit();
      double perRead = serviceNanos / (double) Math.min(n, parallel);
      for (int i = 0; i < n; i++) {
        l.onBlocked(); // the device, not the demand, is the bottleneck here
        now += (long) perRead;
        l.onComplete(now);
      }
    }
    return l.limit();
  }

  @Test
  void aFarAwayStoreThatDoesNotQueueGetsTheCeiling() {
    // 20 ms per GET, 1000 served at once: every read more in flight is more throughput.
    assertEquals(256, settle(new InFlightLimit(4, 256, 16), 1000, 20_000_000, 200));
  }

  @Test
  void aSaturatedDeviceSettlesNearItsParallelism() {
    InFlightLimit l = new InFlightLimit(4, 256, 16);
    int most = 0;
    int least = Integer.MAX_VALUE;
    settle(l, 32, 100_000, 100);
    for (int r = 0; r < 200; r++) {
      int limit = settle(l, 32, 100_000, 1);
      most = Math.max(most, limit);
      least = Math.min(least, limit);
    }
    assertTrue(least >= 16 && most <= 80, "limit in [" + least + ", " + most + "] for 32 at once");
  }

  @Test
  void aDeviceThatServesLessFollowsItDown() {
    InFlightLimit l = new InFlightLimit(4, 256, 128);
    int before = settle(l, 1000, 100_000, 100); // fast and parallel: climbs
    int after = settle(l, 8, 100_000, 400); // then only 8 at once
    assertTrue(after < before, "limit " + before + " -> " + after);
    assertTrue(after <= 32, "limit=" + after + " for a device serving 8 at once");
  }

  @Test
  void roundsPacedByTheConsumersChangeNothing() {
    InFlightLimit l = new InFlightLimit(4, 256, 64);
    for (int i = 0; i < 10_000; i++) {
      now += 1_000_000; // slow consumers: one read a millisecond, never waiting for a slot
      l.onComplete(now);
    }
    assertEquals(64, l.limit());
  }

  @Test
  void rejectsLimitsOutOfOrder() {
    assertThrows(IllegalArgumentException.class, () -> new InFlightLimit(8, 4, 6));
    assertThrows(IllegalArgumentException.class, () -> new InFlightLimit(0, 4, 2));
    assertThrows(IllegalArgumentException.class, () -> new InFlightLimit(2, 4, 5));
  }
}
