package io.sluice.server;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/**
 * Tells whether a folder lives on a network file system (NFS, Lustre, GPFS, CephFS, a FUSE mount of
 * an object store, ...), from the mount table: a sample there costs a network round trip and a
 * shared server's time, so a peer's cache is the cheaper place to take it from.
 */
final class NetworkMounts {
  /** File system types whose reads cross the network. */
  static final Set<String> NETWORK_TYPES =
      Set.of(
          "nfs",
          "nfs4",
          "cifs",
          "smb3",
          "smbfs",
          "lustre",
          "gpfs",
          "beegfs",
          "ceph",
          "glusterfs",
          "9p",
          "afs",
          "wekafs",
          "orangefs",
          "pvfs2",
          "panfs",
          "davfs",
          "fuse.sshfs",
          "fuse.s3fs",
          "fuse.gcsfuse",
          "fuse.goofys",
          "fuse.mountpoint-s3",
          "fuse.juicefs",
          "fuse.glusterfs",
          "fuse.ceph-fuse",
          "fuse.blobfuse2",
          "fuse.rclone");

  private NetworkMounts() {}

  /** The mount table this process sees. */
  static final Path PROC_MOUNTS = Path.of("/proc/mounts");

  /**
   * Whether {@code folder} is on a network file system according to {@code mounts} (lines as in
   * /proc/mounts); false when the table cannot be read.
   */
  static boolean isNetwork(Path folder, Path mounts) {
    List<String> lines;
    Path real;
    try {
      lines = Files.readAllLines(mounts);
      real = folder.toRealPath();
    } catch (IOException | RuntimeException e) {
      return false;
    }
    String best = null;
    String bestType = null;
    for (String line : lines) {
      String[] f = line.split(" ");
      if (f.length < 3) {
        continue;
      }
      String point = unescape(f[1]);
      if (real.startsWith(point) && (best == null || point.length() >= best.length())) {
        best = point; // the last, longest mount over the folder is the one that serves it
        bestType = f[2];
      }
    }
    return bestType != null && NETWORK_TYPES.contains(bestType);
  }

  /** /proc/mounts writes a space as \040 and a tab as \011. */
  private static String unescape(String s) {
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\");
  }
}
