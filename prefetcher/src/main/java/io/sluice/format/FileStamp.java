package io.sluice.format;

import io.sluice.s3.S3Attributes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Objects;

/**
 * A file's identity when it was indexed: length and last-modified time, and for an object in an
 * S3-compatible store its ETag. A file whose stamp changed is re-indexed or refused, never served
 * as garbage.
 *
 * @param path relative to the dataset folder
 * @param etag the object's ETag; null for local files
 */
public record FileStamp(String path, long lengthBytes, long mtimeMs, String etag) {
  /** A local file's stamp. */
  public FileStamp(String path, long lengthBytes, long mtimeMs) {
    this(path, lengthBytes, mtimeMs, null);
  }

  /** The stamp of {@code dir/path} now. */
  public static FileStamp of(Path dir, String path) throws IOException {
    BasicFileAttributes a = Files.readAttributes(dir.resolve(path), BasicFileAttributes.class);
    return new FileStamp(path, a.size(), a.lastModifiedTime().toMillis(), etagOf(a));
  }

  private static String etagOf(BasicFileAttributes a) {
    return a instanceof S3Attributes s ? s.etag() : null;
  }

  /** Fails naming the file when it is gone or its length or mtime changed since indexing. */
  public void checkUnchanged(Path dir) throws IOException {
    Path p = dir.resolve(path);
    if (!Files.isRegularFile(p)) {
      throw new DatasetFormatException(p, -1, "listed in the manifest but missing");
    }
    BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class);
    long len = a.size();
    long mtime = a.lastModifiedTime().toMillis();
    String tag = etagOf(a);
    if (etag != null && tag != null && !etag.equals(tag)) {
      throw new DatasetFormatException(
          p,
          -1,
          "changed since indexing (etag="
              + etag
              + ", now "
              + tag
              + "); re-run sluice dataset index");
    }
    if (len != lengthBytes || mtime != mtimeMs || !Objects.equals(etag, tag)) {
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
