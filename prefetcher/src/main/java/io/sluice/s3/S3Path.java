package io.sluice.s3;

import java.net.URI;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.ProviderMismatchException;
import java.nio.file.WatchEvent;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A path in a {@link S3FileSystem}: {@code /bucket/key/parts}, absolute, or relative parts to
 * resolve against one. {@link #toUri()} gives {@code s3://bucket/key}. Immutable.
 */
public final class S3Path implements Path {
  private final S3FileSystem fs;
  private final boolean absolute;
  private final String[] names;

  S3Path(S3FileSystem fs, boolean absolute, String[] names) {
    this.fs = fs;
    this.absolute = absolute;
    this.names = names;
  }

  static S3Path parse(S3FileSystem fs, String first, String... more) {
    StringBuilder b = new StringBuilder(first);
    for (String m : more) {
      if (!m.isEmpty()) {
        b.append('/').append(m);
      }
    }
    String s = b.toString();
    List<String> parts = new ArrayList<>();
    for (String p : s.split("/")) {
      if (!p.isEmpty()) {
        parts.add(p);
      }
    }
    return new S3Path(fs, s.startsWith("/"), parts.toArray(String[]::new));
  }

  /** The bucket of an absolute path. */
  public String bucket() {
    requireAbsolute();
    if (names.length == 0) {
      throw new IllegalArgumentException("path=/ names no bucket");
    }
    return names[0];
  }

  /** The object key (or prefix) of an absolute path: "" for the bucket itself. */
  public String key() {
    requireAbsolute();
    return String.join("/", Arrays.asList(names).subList(Math.min(1, names.length), names.length));
  }

  private void requireAbsolute() {
    if (!absolute) {
      throw new IllegalArgumentException("path=" + this + " is relative: no bucket or key");
    }
  }

  @Override
  public S3FileSystem getFileSystem() {
    return fs;
  }

  @Override
  public boolean isAbsolute() {
    return absolute;
  }

  @Override
  public Path getRoot() {
    return absolute ? new S3Path(fs, true, new String[0]) : null;
  }

  @Override
  public Path getFileName() {
    return names.length == 0 ? null : new S3Path(fs, false, new String[] {names[names.length - 1]});
  }

  @Override
  public Path getParent() {
    if (names.length == 0 || (!absolute && names.length == 1)) {
      return absolute && names.length == 1 ? getRoot() : null;
    }
    return new S3Path(fs, absolute, Arrays.copyOf(names, names.length - 1));
  }

  @Override
  public int getNameCount() {
    return names.length;
  }

  @Override
  public Path getName(int index) {
    return subpath(index, index + 1);
  }

  @Override
  public Path subpath(int beginIndex, int endIndex) {
    if (beginIndex < 0 || endIndex > names.length || beginIndex >= endIndex) {
      throw new IllegalArgumentException(
          "subpath(" + beginIndex + ", " + endIndex + ") of " + names.length + " names");
    }
    return new S3Path(fs, false, Arrays.copyOfRange(names, beginIndex, endIndex));
  }

  @Override
  public boolean startsWith(Path other) {
    if (!(other instanceof S3Path o) || o.fs != fs || o.absolute != absolute) {
      return false;
    }
    if (o.names.length > names.length) {
      return false;
    }
    for (int i = 0; i < o.names.length; i++) {
      if (!o.names[i].equals(names[i])) {
        return false;
      }
    }
    return true;
  }

  @Override
  public boolean endsWith(Path other) {
    if (!(other instanceof S3Path o) || o.fs != fs || (o.absolute && !equals(o))) {
      return false;
    }
    if (o.names.length > names.length) {
      return false;
    }
    int off = names.length - o.names.length;
    for (int i = 0; i < o.names.length; i++) {
      if (!o.names[i].equals(names[off + i])) {
        return false;
      }
    }
    return true;
  }

  @Override
  public Path normalize() {
    List<String> out = new ArrayList<>();
    for (String n : names) {
      if (n.equals(".")) {
        continue;
      }
      if (n.equals("..") && !out.isEmpty() && !out.getLast().equals("..")) {
        out.removeLast();
      } else if (!(n.equals("..") && absolute)) {
        out.add(n);
      }
    }
    return new S3Path(fs, absolute, out.toArray(String[]::new));
  }

  @Override
  public Path resolve(Path other) {
    S3Path o = check(other);
    if (o.absolute) {
      return o;
    }
    String[] joined = Arrays.copyOf(names, names.length + o.names.length);
    System.arraycopy(o.names, 0, joined, names.length, o.names.length);
    return new S3Path(fs, absolute, joined);
  }

  @Override
  public Path resolve(String other) {
    return resolve(parse(fs, other));
  }

  @Override
  public Path relativize(Path other) {
    S3Path o = check(other);
    if (o.absolute != absolute || !o.startsWith(this)) {
      throw new IllegalArgumentException("path=" + other + " is not below " + this);
    }
    return new S3Path(fs, false, Arrays.copyOfRange(o.names, names.length, o.names.length));
  }

  @Override
  public URI toUri() {
    return URI.create("s3://" + (absolute ? "" : "./") + String.join("/", names));
  }

  @Override
  public Path toAbsolutePath() {
    requireAbsolute();
    return this;
  }

  @Override
  public Path toRealPath(LinkOption... options) {
    return toAbsolutePath();
  }

  @Override
  public WatchKey register(
      WatchService watcher, WatchEvent.Kind<?>[] events, WatchEvent.Modifier... modifiers) {
    throw new UnsupportedOperationException("an object store has no change notifications");
  }

  @Override
  public int compareTo(Path other) {
    return toString().compareTo(check(other).toString());
  }

  private S3Path check(Path other) {
    if (!(other instanceof S3Path o) || o.fs != fs) {
      throw new ProviderMismatchException("path=" + other + " is not on " + fs);
    }
    return o;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof S3Path p
        && p.fs == fs
        && p.absolute == absolute
        && Arrays.equals(p.names, names);
  }

  @Override
  public int hashCode() {
    return Objects.hash(absolute, Arrays.hashCode(names));
  }

  /** {@code s3://bucket/key} for an absolute path, the joined names for a relative one. */
  @Override
  public String toString() {
    return absolute ? "s3://" + String.join("/", names) : String.join("/", names);
  }
}
