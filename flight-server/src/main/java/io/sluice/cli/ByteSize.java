package io.sluice.cli;

import java.util.Locale;

/**
 * Sizes on the command line: a number of bytes with an optional k, m, g or t suffix (powers of
 * 1024).
 */
final class ByteSize {
  private ByteSize() {}

  /** Parses {@code value}; a mistake is a usage error naming {@code option} and the value. */
  static long parse(String option, String value) {
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
      throw new UsageException(option + "=" + value + " must be a size such as 512m or 8g");
    }
    if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
      throw new UsageException(option + "=" + value + " is out of range");
    }
    return n << shift;
  }
}
