package io.sluice.s3;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileStore;
import java.nio.file.FileSystem;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.WatchService;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.UserPrincipalLookupService;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Logger;
import java.util.regex.Pattern;

/**
 * An S3-compatible store as a {@link FileSystem}, so the formats index and open a bucket prefix
 * exactly as they do a local folder: {@code s3://bucket/prefix} is a directory, its objects are
 * files. Listings are paginated; object sizes and ETags from listings and heads sit in a Caffeine
 * cache for {@value #ATTRIBUTE_TTL_SECONDS} s. Writes (the manifest and index files {@code sluice
 * dataset index} makes) are whole-object PUTs; where the credentials may not write to the bucket,
 * they go to a local overlay folder instead ({@link S3Settings#metadataDir}, {@code bucket/key}
 * below it), which reads consult when the bucket has no such object. Thread-safe.
 */
public final class S3FileSystem extends FileSystem {
  static final long ATTRIBUTE_TTL_SECONDS = 60;

  /** A miss lists the parent prefix, once per TTL, up to this many pages, to fill the cache. */
  static final int SIBLING_PAGES = 16;

  private static final Logger LOG = Logger.getLogger(S3FileSystem.class.getName());
  private static final Pattern URI_FORM = Pattern.compile("s3://([^/]+)(/.*)?");

  private final S3FileSystemProvider provider = new S3FileSystemProvider(this);
  private final S3Store store;
  private final Path overlay;
  private final boolean ownsStore;
  private final Cache<String, Optional<S3Attributes>> attributes =
      Caffeine.newBuilder()
          .expireAfterWrite(Duration.ofSeconds(ATTRIBUTE_TTL_SECONDS))
          .maximumSize(1_000_000)
          .build();
  private final Cache<String, Boolean> listedPrefixes =
      Caffeine.newBuilder().expireAfterWrite(Duration.ofSeconds(ATTRIBUTE_TTL_SECONDS)).build();
  private final AtomicBoolean overlayLogged = new AtomicBoolean();
  private final Set<String> readOnlyBuckets = ConcurrentHashMap.newKeySet();
  private volatile boolean open = true;

  private S3FileSystem(S3Store store, boolean ownsStore) {
    this.store = store;
    this.ownsStore = ownsStore;
    this.overlay = store.settings().metadataDir();
  }

  /** A file system over {@code store}; closing it closes the store. */
  public static S3FileSystem open(S3Store store) {
    return new S3FileSystem(store, true);
  }

  /** A file system over a store someone else closes. */
  public static S3FileSystem over(S3Store store) {
    return new S3FileSystem(store, false);
  }

  /** True for {@code s3://bucket[/prefix]}. */
  public static boolean isS3Uri(String s) {
    return s != null && s.startsWith("s3://");
  }

  /**
   * The path {@code s3://bucket/prefix} names.
   *
   * @throws IllegalArgumentException naming the text when it is not such a URI
   */
  public S3Path path(String uri) {
    return S3Path.parse(this, "/" + checkUri(uri));
  }

  /**
   * {@code bucket/prefix} of {@code s3://bucket/prefix}, checked without a store: a valid bucket
   * name and no {@code .} or {@code ..} parts.
   *
   * @throws IllegalArgumentException naming the text and what is wrong
   */
  public static String checkUri(String uri) {
    var m = URI_FORM.matcher(uri == null ? "" : uri);
    if (!m.matches()) {
      throw new IllegalArgumentException(
          "path=" + uri + " is not an S3 URI of the form s3://bucket/prefix");
    }
    String bucket = m.group(1);
    if (!bucket.matches("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")) {
      throw new IllegalArgumentException(
          "path=" + uri + ": bucket=" + bucket + " is not a valid S3 bucket name");
    }
    String rest = m.group(2) == null ? "" : m.group(2);
    for (String part : rest.split("/")) {
      if (part.equals("..") || part.equals(".")) {
        throw new IllegalArgumentException(
            "path=" + uri + ": '" + part + "' is not allowed in a key");
      }
    }
    return bucket + rest;
  }

  public S3Store store() {
    return store;
  }

  // ---- what the provider calls ----

  S3Attributes attributes(S3Path p) throws IOException {
    if (p.getNameCount() == 0) {
      return S3Attributes.dir();
    }
    Optional<S3Attributes> object = cachedObject(p);
    if (object.isPresent()) {
      return object.get();
    }
    Path local = overlayFile(p);
    if (local != null && Files.exists(local)) {
      BasicFileAttributes a = Files.readAttributes(local, BasicFileAttributes.class);
      return new S3Attributes(a.isDirectory(), a.size(), a.lastModifiedTime().toInstant(), null);
    }
    String key = p.key();
    S3Store.Page page = store.list(p.bucket(), key.isEmpty() ? "" : key + "/", "/", null, 1);
    if (!page.objects().isEmpty() || !page.prefixes().isEmpty() || key.isEmpty()) {
      return S3Attributes.dir();
    }
    throw new NoSuchFileException(p.toString());
  }

  /** The object at {@code p} from the cache, a sibling listing or a head; empty when none. */
  private Optional<S3Attributes> cachedObject(S3Path p) throws IOException {
    String id = p.bucket() + "/" + p.key();
    Optional<S3Attributes> hit = attributes.getIfPresent(id);
    if (hit != null) {
      return hit;
    }
    if (p.getNameCount() > 1 && p.getParent() instanceof S3Path parent) {
      String parentId = parent.bucket() + "/" + parent.key();
      if (listedPrefixes.getIfPresent(parentId) == null) {
        listedPrefixes.put(parentId, Boolean.TRUE);
        if (listChildren(parent, SIBLING_PAGES)) {
          hit = attributes.getIfPresent(id);
          return hit != null ? hit : Optional.empty();
        }
        hit = attributes.getIfPresent(id);
        if (hit != null) {
          return hit;
        }
      }
    }
    S3Store.ObjectInfo info = store.head(p.bucket(), p.key());
    Optional<S3Attributes> found = Optional.ofNullable(info).map(S3Attributes::object);
    attributes.put(id, found);
    return found;
  }

  /**
   * Lists the objects right below {@code dir} into the cache, up to {@code maxPages} pages. True
   * when the listing was complete, so a key below {@code dir} not seen is not there.
   */
  private boolean listChildren(S3Path dir, int maxPages) throws IOException {
    String key = dir.key();
    String prefix = key.isEmpty() ? "" : key + "/";
    String token = null;
    for (int page = 0; page < maxPages; page++) {
      S3Store.Page pg = store.list(dir.bucket(), prefix, "/", token, 1000);
      for (S3Store.ObjectInfo o : pg.objects()) {
        attributes.put(dir.bucket() + "/" + o.key(), Optional.of(S3Attributes.object(o)));
      }
      token = pg.next();
      if (token == null) {
        return true;
      }
    }
    return false;
  }

  /** Every entry right below {@code dir}: objects, then sub-prefixes, each page in key order. */
  List<Path> list(S3Path dir) throws IOException {
    String key = dir.key();
    String prefix = key.isEmpty() ? "" : key + "/";
    List<Path> out = new ArrayList<>();
    String token = null;
    do {
      S3Store.Page pg = store.list(dir.bucket(), prefix, "/", token, 1000);
      for (S3Store.ObjectInfo o : pg.objects()) {
        String name = o.key().substring(prefix.length());
        if (name.isEmpty()) {
          continue; // a "folder marker" object some tools make
        }
        attributes.put(dir.bucket() + "/" + o.key(), Optional.of(S3Attributes.object(o)));
        out.add(dir.resolve(name));
      }
      for (String sub : pg.prefixes()) {
        out.add(dir.resolve(sub.substring(prefix.length())));
      }
      token = pg.next();
    } while (token != null);
    if (out.isEmpty()) {
      attributes(dir); // an empty listing of a prefix that is not there: NoSuchFileException
    }
    return out;
  }

  /** The object, as a reader needs it (size and ETag), or null when the bucket has none. */
  S3Store.ObjectInfo object(S3Path p) throws IOException {
    Optional<S3Attributes> a = cachedObject(p);
    if (a.isEmpty() || a.get().directory()) {
      return null;
    }
    S3Attributes at = a.get();
    return new S3Store.ObjectInfo(p.bucket(), p.key(), at.size(), at.etag(), at.modified());
  }

  FileChannel openRead(S3Path p) throws IOException {
    S3Store.ObjectInfo o = object(p);
    if (o != null) {
      return new S3ReadChannel(store, o);
    }
    Path local = overlayFile(p);
    if (local != null && Files.isRegularFile(local)) {
      return FileChannel.open(local, StandardOpenOption.READ);
    }
    throw new NoSuchFileException(p.toString());
  }

  void put(S3Path p, byte[] data) throws IOException {
    forget(p);
    Path local = overlayFile(p);
    if (local != null && readOnlyBuckets.contains(p.bucket())) {
      writeOverlay(local, data);
      return;
    }
    try {
      store.put(p.bucket(), p.key(), data);
    } catch (AccessDeniedException e) {
      if (local == null) {
        throw new AccessDeniedException(
            p.toString(), null, "the bucket is read-only and no metadata folder is set");
      }
      if (overlayLogged.compareAndSet(false, true)) {
        LOG.warning(
            () ->
                "s3://"
                    + p.bucket()
                    + " is read-only for these credentials: keeping Sluice's index files in "
                    + overlay);
      }
      readOnlyBuckets.add(p.bucket());
      writeOverlay(local, data);
    }
  }

  private static void writeOverlay(Path local, byte[] data) throws IOException {
    Files.createDirectories(local.getParent());
    Path tmp = local.resolveSibling(local.getFileName() + ".part");
    Files.write(tmp, data);
    Files.move(tmp, local, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  void delete(S3Path p) throws IOException {
    Path local = overlayFile(p);
    if (local != null && Files.deleteIfExists(local)) {
      forget(p);
      return;
    }
    if (object(p) == null) {
      throw new NoSuchFileException(p.toString());
    }
    forget(p);
    store.delete(p.bucket(), p.key());
  }

  /** A rename: local within the overlay, else a server-side copy then a delete. */
  void move(S3Path from, S3Path to) throws IOException {
    if (!from.bucket().equals(to.bucket())) {
      throw new IOException("move " + from + " to " + to + ": across buckets is not supported");
    }
    Path localFrom = overlayFile(from);
    if (localFrom != null && Files.isRegularFile(localFrom)) {
      Path localTo = overlayFile(to);
      Files.createDirectories(localTo.getParent());
      Files.move(
          localFrom, localTo, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      forget(to);
      return;
    }
    copy(from, to);
    delete(from);
  }

  void copy(S3Path from, S3Path to) throws IOException {
    if (object(from) == null) {
      throw new NoSuchFileException(from.toString());
    }
    forget(to);
    store.copy(from.bucket(), from.key(), to.key());
  }

  private void forget(S3Path p) {
    attributes.invalidate(p.bucket() + "/" + p.key());
  }

  /** Where {@code p} lives in the overlay folder, or null without one. */
  private Path overlayFile(S3Path p) {
    if (overlay == null || p.getNameCount() < 2) {
      return null;
    }
    return overlay.resolve(p.bucket()).resolve(p.key());
  }

  // ---- FileSystem ----

  @Override
  public S3FileSystemProvider provider() {
    return provider;
  }

  @Override
  public void close() {
    open = false;
    if (ownsStore) {
      store.close();
    }
  }

  @Override
  public boolean isOpen() {
    return open;
  }

  @Override
  public boolean isReadOnly() {
    return false;
  }

  @Override
  public String getSeparator() {
    return "/";
  }

  @Override
  public Iterable<Path> getRootDirectories() {
    return List.of(S3Path.parse(this, "/"));
  }

  @Override
  public Iterable<FileStore> getFileStores() {
    return List.of();
  }

  @Override
  public Set<String> supportedFileAttributeViews() {
    return Set.of("basic");
  }

  @Override
  public S3Path getPath(String first, String... more) {
    return isS3Uri(first) && more.length == 0 ? path(first) : S3Path.parse(this, first, more);
  }

  @Override
  public PathMatcher getPathMatcher(String syntaxAndPattern) {
    PathMatcher local = java.nio.file.FileSystems.getDefault().getPathMatcher(syntaxAndPattern);
    return p -> local.matches(java.nio.file.Path.of(p.toString()));
  }

  @Override
  public UserPrincipalLookupService getUserPrincipalLookupService() {
    throw new UnsupportedOperationException("an object store has no users");
  }

  @Override
  public WatchService newWatchService() {
    throw new UnsupportedOperationException("an object store has no change notifications");
  }

  DirectoryStream<Path> directoryStream(S3Path dir, DirectoryStream.Filter<? super Path> filter)
      throws IOException {
    List<Path> entries = new ArrayList<>();
    for (Path p : list(dir)) {
      if (filter == null || filter.accept(p)) {
        entries.add(p);
      }
    }
    return new DirectoryStream<>() {
      @Override
      public java.util.Iterator<Path> iterator() {
        return entries.iterator();
      }

      @Override
      public void close() {}
    };
  }

  @Override
  public String toString() {
    return "S3FileSystem["
        + (store.settings().endpoint() == null ? "aws" : store.settings().endpoint())
        + "]";
  }
}
