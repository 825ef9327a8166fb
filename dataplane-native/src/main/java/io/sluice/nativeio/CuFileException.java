package io.sluice.nativeio;

import java.io.IOException;

/** A failed cuFile call: the message names the call, its subject and cuFile's error. */
public final class CuFileException extends IOException {
  private static final long serialVersionUID = 1L;

  private final int code;

  public CuFileException(String message, int code) {
    super(message);
    this.code = code;
  }

  /** The {@code CUfileOpError}, 0 when the call failed before cuFile answered. */
  public int code() {
    return code;
  }
}
