package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeFileTest {
  @BeforeAll
  static void needsLinux() {
    assumeTrue(
        IoUring.platformCause(System.getProperty("os.name"), System.getProperty("os.arch"))
            == null);
  }

  @Test
  void opensReadOnlyWithoutTruncating(@TempDir Path dir) throws IOException {
    Path p = Files.write(dir.resolve("a.bin"), new byte[12345]);
    try (NativeFile f = NativeFile.open(p, false)) {
      assertTrue(f.fd() >= 0);
      NativeFile.Stat st = f.stat();
      assertEquals(12345, st.sizeBytes());
      assertTrue(st.dioOffsetAlign() >= 0 && st.dioMemAlign() >= 0, st.toString());
    }
    assertEquals(12345, Files.size(p), "open must never truncate");
  }

  @Test
  void missingFileNamesPathAndErrno(@TempDir Path dir) {
    Path p = dir.resolve("missing.bin");
    NativeIoException e = assertThrows(NativeIoException.class, () -> NativeFile.open(p, false));
    assertEquals(Errno.ENOENT, e.errno());
    assertTrue(e.getMessage().contains("file=" + p), e.getMessage());
    assertTrue(e.getMessage().contains("ENOENT"), e.getMessage());
  }

  @Test
  void directOnAFileSystemWithoutDirectIoIsEinval() {
    // procfs refuses O_DIRECT at open, as tmpfs did before Linux 6.6.
    NativeIoException e =
        assertThrows(
            NativeIoException.class, () -> NativeFile.open(Path.of("/proc/version"), true));
    assertEquals(Errno.EINVAL, e.errno());
  }

  @Test
  void closeIsIdempotentAndStatAfterCloseFails(@TempDir Path dir) throws IOException {
    Path p = Files.write(dir.resolve("a.bin"), new byte[1]);
    NativeFile f = NativeFile.open(p, false);
    f.close();
    f.close();
    NativeIoException e = assertThrows(NativeIoException.class, f::stat);
    assertTrue(e.getMessage().contains("closed"), e.getMessage());
  }
}
