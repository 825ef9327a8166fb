package io.sluice.read;

import java.io.IOException;

/** Helpers for the open shards a format holds. */
public final class ReadFiles {
  private ReadFiles() {}

  /**
   * Closes every non-null file, even when some fail; the first failure is thrown with the others
   * suppressed into it.
   */
  public static void closeAll(ReadFile[] files) throws IOException {
    IOException first = null;
    for (ReadFile f : files) {
      if (f == null) {
        continue;
      }
      try {
        f.close();
      } catch (IOException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }
}
