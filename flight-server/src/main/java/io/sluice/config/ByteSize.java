package io.sluice.config;

import java.util.Locale;

/**
 * Sizes on the command line: a number of bytes with an optional k, m, g or t suffix (powers of
 * 1024).
 */
public final class ByteSize {
  private ByteSize() {}

  /**
   * Parses {@code value}; a mistake is a {@link ConfigException} naming {@code option} and the
   * value.
   */
  public static long parse(String option, String value) {
    String v = value.strip().toLowerCase(Locale.ROOT);
    if (v.endsWith("b")) {
      v = v.substring(0, v.length() - 1);
    }
    int shift = 0;
    if (!v.isEmpty()) {
      switch (v.charAt(v.length() - 1)) {
        case 'k' -> shift = 10;
        case 'm' -> shift = 20;
        case 'g' -> shift = 30;
        case 't' -> shift = 40;
        default -> shift = 0;
      }
    }
    String digits = shift == 0 ? v : v.substring(0, v.length() - 1);
    long n;
    try {
      n = Long.parseLong(digits);
    } catch (NumberFormatException e) {
      throw new ConfigException(option + "=" + value + " must be a size such as 512m or 8g", e);
    }
    if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
      throw new ConfigException(option + "=" + value + " is out of range");
    }
    return n << shift;
  }

  /**
   * {@code bytes} as the shortest exact size with a suffix ({@code 4g}, {@code 1536m}), else bytes.
   */
  public static String format(long bytes) {
    String[] suffixes = {"t", "g", "m", "k"};
    int[] shifts = {40, 30, 20, 10};
    for (int i = 0; i < shifts.length; i++) {
      long unit = 1L << shifts[i];
      if (bytes != 0 && bytes % unit == 0) {
        return (bytes / unit) + suffixes[i];
      }
    }
    return Long.toString(bytes);
  }
}
