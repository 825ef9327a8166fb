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
}
