package io.sluice.server;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.memory.BufferAllocator;

/**
 * The {@code shm} delivery path's availability holder and region factory. At start it makes a
 * private folder under the shared-memory mount (mode 0700, one per daemon process) holding a probe
 * file with a random token: a client that can read the token shares this host and this shared
 * memory and may use shm. Regions are files in that folder, one per stream, removed when the stream
 * ends; folders left by daemons that died are removed at start.
 */
final class ShmDelivery implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ShmDelivery.class.getName());
  static final Path DEFAULT_DIR = Path.of("/dev/shm");
  private static final String PREFIX = "sluice-";

  private final Path dir;
  private final Path probe;
  private final byte[] token;
  private final String cause;
  private final AtomicLong regionIds = new AtomicLong();
  private final CudaDevices cuda;

  private ShmDelivery(Path dir, Path probe, byte[] token, String cause, CudaDevices cuda) {
    this.cuda = cuda;
    this.dir = dir;
    this.probe = probe;
    this.token = token;
    this.cause = cause;
  }

  /** Sets up under {@code mount} (normally /dev/shm); unavailable, with the reason, on failure. */
  static ShmDelivery open(Path mount) {
    return open(mount, new CudaDevices());
  }

  /** As {@link #open(Path)}, delivering to {@code cuda}'s GPUs. */
  static ShmDelivery open(Path mount, CudaDevices cuda) {
    if (!Files.isDirectory(mount)) {
      return unavailable("shared-memory folder " + mount + " does not exist", cuda);
    }
    removeStale(mount);
    byte[] token = new byte[16];
    new SecureRandom().nextBytes(token);
    String hex = HexFormat.of().formatHex(token);
    Path dir = mount.resolve(PREFIX + ProcessHandle.current().pid() + "-" + hex.substring(0, 8));
    try {
      Files.createDirectory(
          dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
      Path probe = dir.resolve("probe");
      Files.writeString(probe, hex, StandardCharsets.US_ASCII);
      Files.setPosixFilePermissions(probe, PosixFilePermissions.fromString("rw-------"));
      return new ShmDelivery(dir, probe, hex.getBytes(StandardCharsets.US_ASCII), null, cuda);
    } catch (IOException | UnsupportedOperationException e) {
      deleteTree(dir);
      return unavailable("cannot create " + dir + ": " + e, cuda);
    }
  }

  private static ShmDelivery unavailable(String cause, CudaDevices cuda) {
    LOG.info("shm delivery unavailable (streams use cpu): " + cause);
    return new ShmDelivery(null, null, null, cause, cuda);
  }

  boolean isAvailable() {
    return cause == null;
  }

  /** Why shm delivery is unavailable; null when it is available. */
  String unavailabilityCause() {
    return cause;
  }

  Path probePath() {
    return probe;
  }

  /** Whether {@code candidate} is this daemon's token (constant-time compare). */
  boolean accepts(String candidate) {
    return isAvailable()
        && candidate != null
        && MessageDigest.isEqual(token, candidate.getBytes(StandardCharsets.US_ASCII));
  }

  /**
   * A new region of {@code capacity} message bytes for one stream, its bytes reserved from {@code
   * budget} for as long as it lives; null when the budget cannot hold it.
   */
  ShmRing newRing(String streamName, long capacity, BufferAllocator budget) throws IOException {
    if (!isAvailable()) {
      throw new IllegalStateException("shm delivery is unavailable: " + cause);
    }
    Path file = dir.resolve("s" + regionIds.incrementAndGet() + "-" + streamName.replace('/', '_'));
    return ShmRing.create(file, capacity, budget);
  }

  /**
   * Where a {@code cuda} stream's control file goes (a header whose release mark the client moves;
   * its batches are on the device). Same folder and same proof of access as the shm regions.
   */
  Path newControlPath(String streamName) {
    if (!isAvailable()) {
      throw new IllegalStateException("shm delivery is unavailable: " + cause);
    }
    return dir.resolve("c" + regionIds.incrementAndGet() + "-" + streamName.replace('/', '_'));
  }

  /** The daemon's CUDA drivers, for cuda streams. */
  CudaDevices cuda() {
    return cuda;
  }

  /** Region files alive now (tests check none outlives its stream). */
  long liveRegions() throws IOException {
    if (!isAvailable()) {
      return 0;
    }
    try (var files = Files.list(dir)) {
      return files.filter(p -> !p.equals(probe)).count();
    }
  }

  @Override
  public void close() {
    cuda.close();
    if (dir != null) {
      deleteTree(dir);
    }
  }

  /** Removes folders of daemons that are gone: their regions would otherwise hold memory. */
  private static void removeStale(Path mount) {
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(mount, PREFIX + "*")) {
      for (Path p : entries) {
        String rest = p.getFileName().toString().substring(PREFIX.length());
        int dash = rest.indexOf('-');
        if (dash <= 0) {
          continue;
        }
        long pid;
        try {
          pid = Long.parseLong(rest.substring(0, dash));
        } catch (NumberFormatException notOurs) {
          continue;
        }
        if (ProcessHandle.of(pid).isEmpty() && Files.isDirectory(p)) {
          LOG.info("removing shm folder " + p + " left by daemon process " + pid);
          deleteTree(p);
        }
      }
    } catch (IOException e) {
      LOG.log(Level.FINE, "could not scan " + mount + " for stale shm folders", e);
    }
  }

  private static void deleteTree(Path dir) {
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
      for (Path p : entries) {
        Files.deleteIfExists(p);
      }
    } catch (IOException ignored) {
      // gone already, or not ours to read
    }
    try {
      Files.deleteIfExists(dir);
    } catch (IOException e) {
      LOG.log(Level.WARNING, "could not remove shm folder " + dir, e);
    }
  }
}
