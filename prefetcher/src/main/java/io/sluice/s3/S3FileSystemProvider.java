package io.sluice.s3;

import java.io.IOException;
import java.net.URI;
import java.nio.channels.FileChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.AccessMode;
import java.nio.file.CopyOption;
import java.nio.file.DirectoryStream;
import java.nio.file.FileStore;
import java.nio.file.FileSystem;
import java.nio.file.LinkOption;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.ProviderMismatchException;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.FileAttributeView;
import java.nio.file.attribute.FileTime;
import java.nio.file.spi.FileSystemProvider;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The provider behind one {@link S3FileSystem}: what {@link java.nio.file.Files} calls on an {@link
 * S3Path}. Not installed system-wide: paths come from {@link S3FileSystem#path}.
 */
public final class S3FileSystemProvider extends FileSystemProvider {
  private final S3FileSystem fs;

  S3FileSystemProvider(S3FileSystem fs) {
    this.fs = fs;
  }

  @Override
  public String getScheme() {
    return "s3";
  }

  @Override
  public FileSystem newFileSystem(URI uri, Map<String, ?> env) {
    throw new UnsupportedOperationException("open one with S3FileSystem.open(store)");
  }

  @Override
  public FileSystem getFileSystem(URI uri) {
    return fs;
  }

  @Override
  public Path getPath(URI uri) {
    return fs.path(uri.toString());
  }

  private S3Path check(Path p) {
    if (!(p instanceof S3Path s) || s.getFileSystem() != fs) {
      throw new ProviderMismatchException("path=" + p + " is not on " + fs);
    }
    if (!s.isAbsolute()) {
      throw new IllegalArgumentException(
          "path=" + p + " is relative: resolve it against s3://bucket");
    }
    return s;
  }

  @Override
  public SeekableByteChannel newByteChannel(
      Path path, Set<? extends OpenOption> options, FileAttribute<?>... attrs) throws IOException {
    return newFileChannel(path, options, attrs);
  }

  @Override
  public FileChannel newFileChannel(
      Path path, Set<? extends OpenOption> options, FileAttribute<?>... attrs) throws IOException {
    S3Path p = check(path);
    if (options.contains(StandardOpenOption.APPEND)) {
      throw new UnsupportedOperationException(p + ": objects cannot be appended to");
    }
    if (options.contains(StandardOpenOption.WRITE)) {
      return new S3WriteChannel(fs, p);
    }
    return fs.openRead(p);
  }

  @Override
  public DirectoryStream<Path> newDirectoryStream(
      Path dir, DirectoryStream.Filter<? super Path> filter) throws IOException {
    return fs.directoryStream(check(dir), filter);
  }

  /** Prefixes need no making: a key's "folders" exist once an object is under them. */
  @Override
  public void createDirectory(Path dir, FileAttribute<?>... attrs) {
    check(dir);
  }

  @Override
  public void delete(Path path) throws IOException {
    fs.delete(check(path));
  }

  @Override
  public void copy(Path source, Path target, CopyOption... options) throws IOException {
    fs.copy(check(source), check(target));
  }

  /** A server-side copy and a delete; readers see the old object or the new one, never a part. */
  @Override
  public void move(Path source, Path target, CopyOption... options) throws IOException {
    fs.move(check(source), check(target));
  }

  @Override
  public boolean isSameFile(Path path, Path path2) {
    return path.equals(path2);
  }

  @Override
  public boolean isHidden(Path path) {
    return false;
  }

  @Override
  public FileStore getFileStore(Path path) {
    throw new UnsupportedOperationException("an object store has no file stores");
  }

  @Override
  public void checkAccess(Path path, AccessMode... modes) throws IOException {
    fs.attributes(check(path));
  }

  @Override
  public <V extends FileAttributeView> V getFileAttributeView(
      Path path, Class<V> type, LinkOption... options) {
    if (type != BasicFileAttributeView.class) {
      return null;
    }
    S3Path p = check(path);
    BasicFileAttributeView view =
        new BasicFileAttributeView() {
          @Override
          public String name() {
            return "basic";
          }

          @Override
          public BasicFileAttributes readAttributes() throws IOException {
            return fs.attributes(p);
          }

          @Override
          public void setTimes(FileTime modified, FileTime access, FileTime create) {
            throw new UnsupportedOperationException(p + ": object times are the store's");
          }
        };
    return type.cast(view);
  }

  @Override
  public <A extends BasicFileAttributes> A readAttributes(
      Path path, Class<A> type, LinkOption... options) throws IOException {
    if (!type.isAssignableFrom(S3Attributes.class)) {
      throw new UnsupportedOperationException(
          path + ": only basic attributes, not " + type.getSimpleName());
    }
    return type.cast(fs.attributes(check(path)));
  }

  @Override
  public Map<String, Object> readAttributes(Path path, String attributes, LinkOption... options)
      throws IOException {
    S3Attributes a = fs.attributes(check(path));
    Map<String, Object> all = new LinkedHashMap<>();
    all.put("size", a.size());
    all.put("lastModifiedTime", a.lastModifiedTime());
    all.put("lastAccessTime", a.lastAccessTime());
    all.put("creationTime", a.creationTime());
    all.put("isRegularFile", a.isRegularFile());
    all.put("isDirectory", a.isDirectory());
    all.put("isSymbolicLink", false);
    all.put("isOther", false);
    all.put("fileKey", a.fileKey());
    String names = attributes.startsWith("basic:") ? attributes.substring(6) : attributes;
    if (names.equals("*")) {
      return all;
    }
    Map<String, Object> out = new LinkedHashMap<>();
    for (String n : names.split(",")) {
      if (all.containsKey(n)) {
        out.put(n, all.get(n));
      }
    }
    return out;
  }

  @Override
  public void setAttribute(Path path, String attribute, Object value, LinkOption... options) {
    throw new UnsupportedOperationException(path + ": object attributes are the store's");
  }
}
