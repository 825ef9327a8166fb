package io.sluice.peer;

import java.io.IOException;

/** A path to a peer failed, or a peer did not answer in time: the caller reads from storage. */
public final class PeerException extends IOException {
  private static final long serialVersionUID = 1L;

  private final boolean timedOut;

  public PeerException(String message) {
    this(message, null, false);
  }

  public PeerException(String message, Throwable cause) {
    this(message, cause, false);
  }

  private PeerException(String message, Throwable cause, boolean timedOut) {
    super(message, cause);
    this.timedOut = timedOut;
  }

  /** The peer did not answer within the transport's fetch timeout. */
  public static PeerException timedOut(String what, long timeoutMs) {
    return new PeerException(what + ": no answer within " + timeoutMs + " ms", null, true);
  }

  /** Whether this is a timeout rather than a broken path. */
  public boolean timedOut() {
    return timedOut;
  }
}
