package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class CudaTest {
  @Test
  void theHolderAnswersWithoutThrowingAndSaysWhy() {
    if (Cuda.isAvailable()) {
      assertNull(Cuda.unavailabilityCause());
      assertFalse(Cuda.devices().isEmpty());
      assertTrue(Cuda.driverVersion().matches("\\d+\\.\\d+"), Cuda.driverVersion());
      Cuda.ensureAvailability();
      return;
    }
    String why = Cuda.unavailabilityCause().getMessage();
    assertFalse(why.isBlank());
    assertTrue(Cuda.devices().isEmpty());
    assertNull(Cuda.driverVersion());
    UnsupportedOperationException e =
        assertThrows(UnsupportedOperationException.class, Cuda::ensureAvailability);
    assertTrue(e.getMessage().startsWith("CUDA unavailable: " + why), e.getMessage());
    if (!Files.exists(Path.of("/dev/nvidiactl"))) {
      // This machine: no NVIDIA driver at all, the message the issue asks for.
      assertTrue(
          why.equals("no CUDA driver: libcuda.so.1 not found") || why.startsWith("cuInit failed"),
          why);
    }
  }

  @Test
  void eachWayToFailHasItsCause() {
    Cuda.Result ok = new Cuda.Result(List.of(new Cuda.Device(0, "GPU", 1L << 34)), "12.4", null);
    assertEquals(ok, Cuda.probe("Linux", null, () -> ok));
    assertEquals(
        "not Linux: os.name=Mac OS X", Cuda.probe("Mac OS X", null, () -> ok).cause().getMessage());
    assertEquals(
        "CUDA disabled by -Dsluice.cuda.disable=true",
        Cuda.probe("Linux", "true", () -> ok).cause().getMessage());
    Cuda.Result denied =
        Cuda.probe(
            "Linux",
            null,
            () -> {
              throw new IllegalCallerException("native access denied");
            });
    assertTrue(denied.cause().getMessage().startsWith("CUDA probe failed: "), denied.toString());
    assertTrue(denied.devices().isEmpty());
  }

  @Test
  void driverErrorsAreNamed() {
    assertEquals("CUDA_ERROR_NO_DEVICE (100)", Cuda.error(100));
    assertEquals("CUDA_ERROR_INSUFFICIENT_DRIVER (35)", Cuda.error(35));
    assertEquals("CUresult (12345)", Cuda.error(12345));
  }

  @Test
  void theDriverOpensOnlyWhereThereIsAGpu() throws CudaException {
    if (Cuda.isAvailable()) {
      try (CudaDriver d = CudaDriver.open(0)) {
        long p = d.allocDevice(4096);
        d.freeDevice(p);
      }
      return;
    }
    UnsupportedOperationException e =
        assertThrows(UnsupportedOperationException.class, () -> CudaDriver.open(0));
    assertTrue(e.getMessage().contains(Cuda.unavailabilityCause().getMessage()), e.getMessage());
  }
}
