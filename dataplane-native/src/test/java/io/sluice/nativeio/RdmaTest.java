package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RdmaTest {
  @Test
  void reportsDevicesOrExplainsWhyNot() {
    Throwable cause = Rdma.unavailabilityCause();
    assertEquals(Rdma.isAvailable(), cause == null);
    if (Rdma.isAvailable()) {
      System.out.println("RDMA devices here: " + Rdma.devices());
      assertFalse(Rdma.devices().isEmpty());
      Rdma.ensureAvailability();
    } else {
      System.out.println("RDMA unavailable here: " + cause.getMessage());
      assertFalse(cause.getMessage().isEmpty());
      if (Rdma.devices().isEmpty()) {
        assertTrue(cause.getMessage().contains("/sys/class/infiniband"), cause.getMessage());
      }
      UnsupportedOperationException e =
          assertThrows(UnsupportedOperationException.class, Rdma::ensureAvailability);
      assertSame(cause, e.getCause());
    }
  }

  @Test
  void disniNeedsRdmaAndSaysWhatIsMissing() {
    Throwable cause = Rdma.disniCause();
    assertEquals(Rdma.isDisniAvailable(), cause == null);
    if (!Rdma.isAvailable()) {
      assertFalse(Rdma.isDisniAvailable());
      assertSame(Rdma.unavailabilityCause(), cause.getCause());
      assertTrue(cause.getMessage().contains(Rdma.unavailabilityCause().getMessage()));
    }
    if (cause != null) {
      System.out.println("DiSNI unavailable here: " + cause.getMessage());
      assertFalse(cause.getMessage().isEmpty());
    }
  }

  @Test
  void holdersLoadAndAnswerWithoutThrowing() {
    // Where a part is missing the classes still load and answer: the point of a holder.
    Rdma.isAvailable();
    Rdma.devices();
    Rdma.isDisniAvailable();
    Rdma.disniCause();
    Ucx.isAvailable();
    Ucx.version();
    Ucx.unavailabilityCause();
  }

  @Test
  void devicesAreTheSysfsEntries(@TempDir Path sysfs) throws IOException {
    assertEquals(List.of(), Rdma.listDevices(sysfs.resolve("missing")));
    assertEquals(List.of(), Rdma.listDevices(sysfs));
    Files.createDirectory(sysfs.resolve("rxe0"));
    Files.createDirectory(sysfs.resolve("mlx5_0"));
    assertEquals(List.of("mlx5_0", "rxe0"), Rdma.listDevices(sysfs));
  }

  @Test
  void noDeviceIsTheCauseBeforeTheLibrary() {
    Throwable cause =
        Rdma.probe(
            List.of(),
            "/sys/class/infiniband",
            () -> {
              throw new AssertionError("library probed without a device");
            });
    assertEquals(
        "no RDMA device: /sys/class/infiniband is empty or missing (no RDMA NIC, no rdma_rxe or"
            + " siw)",
        cause.getMessage());
    assertNull(Rdma.probe(List.of("mlx5_0"), "/sys/class/infiniband", () -> null));
    UnsatisfiedLinkError boom = new UnsatisfiedLinkError("boom");
    Throwable thrown =
        Rdma.probe(
            List.of("mlx5_0"),
            "/sys/class/infiniband",
            () -> {
              throw boom;
            });
    assertSame(boom, thrown.getCause());
  }

  @Test
  void disniLibraryIsFoundOnEitherPath(@TempDir Path dir) throws IOException {
    Path a = Files.createDirectory(dir.resolve("a"));
    Path b = Files.createDirectory(dir.resolve("b"));
    String name = System.mapLibraryName("disni");
    assertNull(Rdma.findLibrary(name, a.toString(), null));
    Path lib = Files.createFile(b.resolve(name));
    assertEquals(lib, Rdma.findLibrary(name, a + File.pathSeparator + b, null));
    assertEquals(lib, Rdma.findLibrary(name, "", b.toString()));
    assertEquals(lib, Rdma.findLibrary(name, a.toString(), "::" + b));
  }

  @Test
  void disniCauseNamesEveryMissingPart() {
    Throwable noDevice = new UnsupportedOperationException("no RDMA device: x");
    Throwable all = Rdma.disniCause(noDevice, null, "java.library.path=/l", false);
    assertEquals(
        Rdma.DISNI_LIBRARY
            + " not found on java.library.path=/l (DiSNI 2.0 ships no native library: build"
            + " it from DiSNI's sources); sun.nio.ch is not exported to DiSNI: run the JVM with"
            + " --add-exports=java.base/sun.nio.ch=ALL-UNNAMED; no RDMA device: x",
        all.getMessage());
    assertSame(noDevice, all.getCause());
    Path lib = Path.of("/l/libdisni.so");
    assertEquals("no RDMA device: x", Rdma.disniCause(noDevice, lib, "", true).getMessage());
    assertNull(Rdma.disniCause(null, lib, "", true));
  }
}
