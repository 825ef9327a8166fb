package io.sluice.peer;

import java.io.IOException;

/** A path to a peer failed: the caller reads from storage instead. */
public final class PeerException extends IOException {
  private static final long serialVersionUID = 1L;

  public PeerException(String message) {
    super(message);
  }

  public PeerException(String message, Throwable cause) {
    super(message, cause);
  }
}
