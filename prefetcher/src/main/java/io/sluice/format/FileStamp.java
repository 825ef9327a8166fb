package io.sluice.format;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A file's identity when it was indexed: length and last-modified time. A file whose stamp changed
 * is re-indexed or refused, never served as garbage.
 *
 * @param path relative to the dataset folder
 */
public record FileStamp(String path, long lengthBytes, long mtimeMs) {
  /** The stamp of {@code dir/path} now. */
  public static FileStamp of(Path dir, String path) throws IOException {
    Path p = dir.resolve(path);
    return new FileStamp(path, Files.size(p), Files.getLastModifiedTime(p).toMillis());
  }

  /** Fails naming the file when it is gone or its length or mtime changed since indexing. */
  public void checkUnchanged(Path dir) throws IOException {
    Path p = dir.resolve(path);
    if (!Files.isRegularFile(p)) {
      throw new DatasetFormatException(p, -1, "listed in the manifest but missing");
    }
    long len = Files.size(p);
    long mtime = Files.getLastModifiedTime(p).toMillis();
    if (len != lengthBytes || mtime != mtimeMs) {
      throw new DatasetFormatException(
          p,
          -1,
          "changed since indexing (length_bytes="
              + lengthBytes
              + " mtime_ms="
              + mtimeMs
              + ", now "
              + len
              + " and "
              + mtime
              + "); re-run sluice dataset index");
    }
  }
}
