package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GdsTest {
  @TempDir Path dir;

  @Test
  void theHolderAnswersWithoutThrowingAndSaysWhy() {
    if (Gds.isAvailable()) {
      assertNull(Gds.unavailabilityCause());
      assertTrue(Cuda.isAvailable(), "cuFile without CUDA");
      assertTrue(Gds.mode() != null && Gds.library() != null);
      return;
    }
    assertFalse(Gds.unavailabilityCause().getMessage().isBlank());
    assertNull(Gds.mode());
    if (!Cuda.isAvailable()) {
      assertEquals(
          "needs CUDA: " + Cuda.unavailabilityCause().getMessage(),
          Gds.unavailabilityCause().getMessage());
    }
  }

  @Test
  void eachWayToFailHasItsCause() {
    Gds.Result ok = new Gds.Result(Gds.Mode.COMPAT, Gds.LIBRARY, null);
    assertSame(ok, Gds.probe("Linux", null, null, () -> ok));
    assertEquals(
        "GDS disabled by -Dsluice.gds.disable=true",
        Gds.probe("Linux", "true", null, () -> ok).cause().getMessage());
    assertEquals(
        "needs CUDA: no CUDA driver: libcuda.so.1 not found",
        Gds.probe(
                "Linux",
                null,
                new UnsupportedOperationException("no CUDA driver: libcuda.so.1 not found"),
                () -> ok)
            .cause()
            .getMessage());
    assertTrue(
        Gds.probe(
                "Linux",
                null,
                null,
                () -> {
                  throw new UnsatisfiedLinkError("no symbol");
                })
            .cause()
            .getMessage()
            .startsWith("cuFile probe failed: "));
  }

  @Test
  void nvidiaFsMakesItTrueGdsAndItsAbsenceCompatibilityMode() throws IOException {
    Path proc = dir.resolve("proc-nvidia-fs");
    Path module = dir.resolve("sys-module-nvidia_fs");
    assertEquals(Gds.Mode.COMPAT, Gds.kernelMode(proc, module));
    Files.createDirectories(module);
    assertEquals(Gds.Mode.GDS, Gds.kernelMode(proc, module));
  }

  @Test
  void aConfiguredLibraryPathWinsOverTheSoname() {
    assertEquals("libcufile.so.0", Gds.libraryName(null, null));
    assertEquals("/w/libcufile.so.0", Gds.libraryName(null, "/w/libcufile.so.0"));
    assertEquals("/p/libcufile.so.0", Gds.libraryName("/p/libcufile.so.0", "/w/libcufile.so.0"));
  }
}
