package io.sluice.nativeio;

import java.io.IOException;

/** A failed CUDA driver call: the message names the call, its subject and the CUresult. */
public final class CudaException extends IOException {
  private static final long serialVersionUID = 1L;

  private final int result;

  public CudaException(String message, int result) {
    super(message);
    this.result = result;
  }

  /** The {@code CUresult}, 0 when the call failed before the driver answered. */
  public int result() {
    return result;
  }
}
