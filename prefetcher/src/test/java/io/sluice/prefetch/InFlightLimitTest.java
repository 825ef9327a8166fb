package io.sluice.prefetch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class InFlightLimitTest {
  /**
   * Feeds {@code rounds} rounds of completions from a device serving {@code parallel} reads at once
   * in {@code serviceNanos} each: with n in flight, a read waits n / parallel service times.
   */
  private static int settle(InFlightLimit l, int parallel, long serviceNanos, int rounds) {
    for (int r = 0; r < rounds; r++) {
      int n = l.limit();
      long latency = serviceNanos * Math.max(1, (n + parallel - 1) / parallel);
      for (int i = 0; i < n; i++) {
        l.onComplete(latency);
      }
    }
    return l.limit();
  }

  @Test
  void aFarAwayStoreThatDoesNotQueueGetsTheCeiling() {
    // 20 ms per GET, 1000 served at once: latency never grows with depth.
    assertEquals(256, settle(new InFlightLimit(4, 256, 16), 1000, 20_000_000, 200));
  }

  @Test
  void aSaturatedDeviceSettlesNearItsParallelism() {
    int limit = settle(new InFlightLimit(4, 256, 16), 32, 100_000, 400);
    assertTrue(limit >= 32 && limit <= 96, "limit=" + limit + " for a device serving 32 at once");
  }

  @Test
  void aDeviceThatSlowsDownShrinksTheLimit() {
    InFlightLimit l = new InFlightLimit(4, 256, 128);
    settle(l, 1000, 100_000, 50); // fast and parallel: grows
    int before = l.limit();
    int after = settle(l, 8, 100_000, 400); // then only 8 at once
    assertTrue(after < before, "limit " + before + " -> " + after);
    assertTrue(after <= 32, "limit=" + after + " for a device serving 8 at once");
  }

  @Test
  void rejectsLimitsOutOfOrder() {
    assertThrows(IllegalArgumentException.class, () -> new InFlightLimit(8, 4, 6));
    assertThrows(IllegalArgumentException.class, () -> new InFlightLimit(0, 4, 2));
    assertThrows(IllegalArgumentException.class, () -> new InFlightLimit(2, 4, 5));
  }
}
