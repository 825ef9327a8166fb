package io.sluice.nativeio;

import java.util.Locale;

/** What every library probe checks before it loads anything. */
final class Probes {
  private Probes() {}

  /**
   * Why {@code capability} is not even looked for: not Linux, or turned off by its {@code
   * -Dproperty=true}; null to go on and probe.
   */
  static String refusal(String capability, String osName, String property, String value) {
    if (!String.valueOf(osName).toLowerCase(Locale.ROOT).startsWith("linux")) {
      return "not Linux: os.name=" + osName;
    }
    if (Boolean.parseBoolean(value)) {
      return capability + " disabled by -D" + property + "=" + value;
    }
    return null;
  }

  /**
   * What every holder's {@code ensureAvailability()} does: nothing when {@code cause} is null, else
   * an {@link UnsupportedOperationException} saying {@code capability} is unavailable and why,
   * {@code cause} chained.
   */
  static void ensure(String capability, Throwable cause) {
    if (cause != null) {
      throw new UnsupportedOperationException(
          capability + " unavailable: " + cause.getMessage(), cause);
    }
  }
}
