package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NetworkMountsTest {
  @TempDir Path dir;

  private Path table(String... lines) throws IOException {
    return Files.write(dir.resolve("mounts"), String.join("\n", lines).getBytes());
  }

  @Test
  void theLongestMountOverTheFolderDecides() throws IOException {
    Path data = Files.createDirectories(dir.resolve("data/shards"));
    String root = dir.toRealPath().toString();
    Path mounts =
        table(
            "/dev/vda1 / ext4 rw 0 0",
            "server:/export " + root + " nfs4 rw 0 0",
            "/dev/nvme0n1 " + root + "/data xfs rw 0 0");
    assertFalse(NetworkMounts.isNetwork(data, mounts), "local xfs mounted over the nfs export");
    assertTrue(NetworkMounts.isNetwork(dir, mounts), "the nfs export itself");
  }

  @Test
  void fuseMountsOfObjectStoresAndLustreCount() throws IOException {
    String root = dir.toRealPath().toString();
    assertTrue(
        NetworkMounts.isNetwork(
            dir, table("/dev/vda1 / ext4 rw 0 0", "mds@tcp:/fs " + root + " lustre rw 0 0")));
    assertTrue(
        NetworkMounts.isNetwork(
            dir, table("/dev/vda1 / ext4 rw 0 0", "s3fs " + root + " fuse.mountpoint-s3 ro 0 0")));
    assertFalse(NetworkMounts.isNetwork(dir, table("/dev/vda1 / ext4 rw 0 0")));
  }

  @Test
  void anUnreadableTableMeansLocal() {
    assertFalse(NetworkMounts.isNetwork(dir, dir.resolve("missing")));
  }
}
