package io.sluice.format.tokens;

import java.util.Locale;

/** Token element types numpy's {@code tofile} writes for token arrays (little-endian). */
public enum TokenDtype {
  UINT16(2),
  UINT32(4);

  private final int widthBytes;

  TokenDtype(int widthBytes) {
    this.widthBytes = widthBytes;
  }

  public int widthBytes() {
    return widthBytes;
  }

  public String wireName() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static TokenDtype parse(String value) {
    for (TokenDtype d : values()) {
      if (d.wireName().equals(value.toLowerCase(Locale.ROOT))) {
        return d;
      }
    }
    throw new IllegalArgumentException("dtype=" + value + " must be one of uint16, uint32");
  }
}
