package io.sluice.read;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.nativeio.IoUring;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ReadBackendsTest {
  @Test
  void unknownChoicesNameTheValueAndTheChoices() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> ReadBackends.select("x"));
    assertEquals("backend=x must be one of auto, posix, io_uring, io_uring+direct", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ReadBackends.select(null));
  }

  @Test
  void posixIsAlwaysThere() {
    try (ReadBackend b = ReadBackends.select("posix")) {
      assertInstanceOf(PosixReadBackend.class, b);
    }
  }

  @Test
  void explicitIoUringWorksOrFailsFastWithTheCause() {
    if (IoUring.isAvailable()) {
      try (ReadBackend b = ReadBackends.select("io_uring")) {
        assertEquals("io_uring", b.name());
      }
      try (ReadBackend b = ReadBackends.select("auto")) {
        assertEquals("io_uring", b.name());
      }
      try (ReadBackend b = ReadBackends.select("io_uring+direct")) {
        assertEquals("io_uring+direct", b.name());
      }
    } else {
      IllegalStateException direct =
          assertThrows(IllegalStateException.class, () -> ReadBackends.select("io_uring+direct"));
      assertTrue(
          direct.getMessage().startsWith("backend=io_uring+direct is unavailable here"),
          direct.getMessage());
      IllegalStateException e =
          assertThrows(IllegalStateException.class, () -> ReadBackends.select("io_uring"));
      assertTrue(e.getMessage().startsWith("backend=io_uring is unavailable here"), e.getMessage());
      assertSame(IoUring.unavailabilityCause(), e.getCause().getCause());
    }
  }

  /** Proves the classes load and explain themselves where io_uring is missing, in a fresh JVM. */
  @Test
  void whereIoUringIsMissingAutoPicksPosixAndSaysWhyOnce() throws Exception {
    Result r = runMain("-D" + IoUring.DISABLE_PROPERTY + "=true");
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.stdout.contains("available=false\n"), r.toString());
    assertTrue(
        r.stdout.contains(
            "cause=java.lang.UnsupportedOperationException: io_uring disabled by"
                + " -Dsluice.io_uring.disable=true\n"),
        r.toString());
    assertTrue(r.stdout.contains("auto=posix\nauto.again=posix\n"), r.toString());
    assertTrue(
        r.stdout.contains(
            "io_uring.error=backend=io_uring is unavailable here: io_uring unavailable: io_uring"
                + " disabled by -Dsluice.io_uring.disable=true"),
        r.toString());
    assertTrue(
        r.stdout.contains("io_uring.cause=java.lang.UnsupportedOperationException"), r.toString());
    String line =
        "io_uring unavailable, using posix: io_uring disabled by -Dsluice.io_uring.disable=true";
    assertEquals(
        1, r.stderr.split(java.util.regex.Pattern.quote(line), -1).length - 1, r.toString());
  }

  record Result(int exit, String stdout, String stderr) {}

  static Result runMain(String... jvmArgs) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("--enable-native-access=ALL-UNNAMED");
    cmd.addAll(List.of(jvmArgs));
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add(SelectBackendMain.class.getName());
    Process p = new ProcessBuilder(cmd).start();
    p.getOutputStream().close();
    // Small outputs: read them after exit without risking a full pipe.
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("forked JVM did not finish: " + cmd);
    }
    return new Result(
        p.exitValue(),
        new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8),
        new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
  }
}
