package io.sluice.hw;

import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * Hardware tests skip with a printed reason where the hardware is absent, and fail instead when
 * {@code -Dsluice.hw.require=true} (set by {@code ./sluice test --hw}) says it must be there.
 */
final class Hardware {
  static final boolean REQUIRED = Boolean.getBoolean("sluice.hw.require");

  private Hardware() {}

  /** Continues when {@code present}; otherwise skips (or fails when required) saying why. */
  static void need(boolean present, String what, String whyMissing) {
    if (present) {
      return;
    }
    String message = what + " not available: " + whyMissing;
    if (REQUIRED) {
      Assertions.fail(message + " (sluice.hw.require=true)");
    }
    System.out.println("[hw-tests] skipped: " + message);
    Assumptions.abort(message);
  }
}
