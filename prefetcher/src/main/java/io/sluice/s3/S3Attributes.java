package io.sluice.s3;

import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.time.Instant;

/**
 * What a {@link S3FileSystem} knows of a path: an object (size, last modified, ETag) or a
 * "directory" (a prefix that objects sit under). {@link #fileKey()} is the ETag, so two stamps of
 * one key differ when its content was replaced.
 *
 * @param etag null for a directory, and for metadata kept in the local overlay folder
 */
public record S3Attributes(boolean directory, long size, Instant modified, String etag)
    implements BasicFileAttributes {
  static S3Attributes object(S3Store.ObjectInfo o) {
    return new S3Attributes(false, o.sizeBytes(), o.modified(), o.etag());
  }

  static S3Attributes dir() {
    return new S3Attributes(true, 0, Instant.EPOCH, null);
  }

  @Override
  public FileTime lastModifiedTime() {
    return FileTime.from(modified);
  }

  @Override
  public FileTime lastAccessTime() {
    return lastModifiedTime();
  }

  @Override
  public FileTime creationTime() {
    return lastModifiedTime();
  }

  @Override
  public boolean isRegularFile() {
    return !directory;
  }

  @Override
  public boolean isDirectory() {
    return directory;
  }

  @Override
  public boolean isSymbolicLink() {
    return false;
  }

  @Override
  public boolean isOther() {
    return false;
  }

  @Override
  public Object fileKey() {
    return etag;
  }
}
