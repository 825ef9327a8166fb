package io.sluice.read;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/** Argument checks and error messages every backend shares, so they fail the same way. */
public final class ReadChecks {
  private ReadChecks() {}

  public static void check(Path path, long offset, ByteBuffer dst) {
    if (offset < 0) {
      throw new IllegalArgumentException("file=" + path + " offset=" + offset + " must be >= 0");
    }
    if (dst.isReadOnly()) {
      throw new IllegalArgumentException(
          "file=" + path + " offset=" + offset + ": destination buffer is read-only");
    }
  }

  public static EOFException endOfFile(Path path, long offset, int wanted, long fileLengthBytes) {
    return new EOFException(
        "file="
            + path
            + " offset="
            + offset
            + ": wanted "
            + wanted
            + " bytes, file ends at "
            + fileLengthBytes
            + " (changed since indexing?)");
  }

  public static IOException closed(Path path, long offset, Throwable cause) {
    return new IOException("file=" + path + " offset=" + offset + ": file is closed", cause);
  }
}
