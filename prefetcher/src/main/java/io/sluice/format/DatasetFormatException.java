package io.sluice.format;

import java.nio.file.Path;

/**
 * A dataset that does not match what its format or manifest says. The message names the file, the
 * byte offset and what was expected, so an operator can find the bad bytes.
 */
public final class DatasetFormatException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Path file;
  private final long offset;

  public DatasetFormatException(Path file, long offset, String expected) {
    super(message(file, offset, expected));
    this.file = file;
    this.offset = offset;
  }

  public DatasetFormatException(Path file, long offset, String expected, Throwable cause) {
    super(message(file, offset, expected), cause);
    this.file = file;
    this.offset = offset;
  }

  private static String message(Path file, long offset, String expected) {
    return "file=" + file + (offset >= 0 ? " offset=" + offset : "") + ": " + expected;
  }

  /** The file at fault. */
  public Path file() {
    return file;
  }

  /** The byte offset at fault, or -1 when the problem is the file as a whole. */
  public long offset() {
    return offset;
  }
}
