package io.sluice.nativeio;

import java.io.IOException;

/** A failed system call: the message names the call, its subject and the errno. */
public final class NativeIoException extends IOException {
  private static final long serialVersionUID = 1L;

  private final int errno;

  /**
   * @param what the call and its subject, e.g. {@code "open file=/data/a.bin"}
   */
  public NativeIoException(String what, int errno) {
    super(what + " failed: errno=" + Errno.describe(errno));
    this.errno = errno;
  }

  /** The positive errno value. */
  public int errno() {
    return errno;
  }
}
