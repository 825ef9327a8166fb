package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.Test;

class UcxTest {
  @Test
  void reportsAVersionOrExplainsWhyNot() {
    Throwable cause = Ucx.unavailabilityCause();
    assertEquals(Ucx.isAvailable(), cause == null);
    if (Ucx.isAvailable()) {
      System.out.println("UCX " + Ucx.version() + " available here");
      assertTrue(Ucx.version().matches("\\d+\\.\\d+\\.\\d+"), Ucx.version());
      Ucx.ensureAvailability();
    } else {
      System.out.println("UCX unavailable here: " + cause);
      assertNull(Ucx.version());
      assertFalse(cause.getMessage().isEmpty());
      UnsupportedOperationException e =
          assertThrows(UnsupportedOperationException.class, Ucx::ensureAvailability);
      assertSame(cause, e.getCause());
      assertEquals("UCX unavailable: " + cause.getMessage(), e.getMessage());
    }
  }

  /**
   * libucs installs its own SIGSEGV handler when it loads; the JVM needs its own (null checks,
   * safepoint polls). HotSpot installs one handler for SIGSEGV and SIGPIPE alike, so after loading
   * UCX the two must still agree.
   */
  @Test
  void loadingUcxLeavesTheJvmItsSegvHandler() {
    assumeTrue(System.getProperty("os.name").startsWith("Linux"), "sigaction layout: Linux only");
    Ucx.isAvailable(); // loads libucp where there is one
    assertEquals(handler(13), handler(11), "SIGSEGV's handler differs from SIGPIPE's (the JVM's)");
    assertEquals(handler(13), handler(7), "SIGBUS's handler differs from SIGPIPE's (the JVM's)");
  }

  @Test
  void disablePropertyWinsOverAWorkingLibrary() {
    Ucx.Result result =
        Ucx.probe(
            "Linux",
            "true",
            () -> {
              throw new AssertionError("library probed although disabled");
            });
    assertNull(result.version());
    assertEquals("UCX disabled by -Dsluice.ucx.disable=true", result.cause().getMessage());
    Ucx.Result found = new Ucx.Result("1.13.1", null);
    assertSame(found, Ucx.probe("Linux", "false", () -> found));
    assertSame(found, Ucx.probe("Linux", null, () -> found));
  }

  @Test
  void otherSystemsAreRefusedByName() {
    Ucx.Result result = Ucx.probe("Mac OS X", null, () -> new Ucx.Result("1.13.1", null));
    assertEquals("not Linux: os.name=Mac OS X", result.cause().getMessage());
  }

  @Test
  void aThrowingLibraryProbeBecomesTheCause() {
    IllegalCallerException boom = new IllegalCallerException("native access denied");
    Ucx.Result result =
        Ucx.probe(
            "Linux",
            null,
            () -> {
              throw boom;
            });
    assertSame(boom, result.cause().getCause());
    assertTrue(result.cause().getMessage().contains("native access denied"));
  }

  @Test
  void versionIsMajorMinorRelease() {
    assertEquals("1.13.1", Ucx.versionString(1, 13, 1));
  }

  private static long handler(int signal) {
    MethodHandle sigaction =
        LibC.downcall("sigaction", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment old = arena.allocate(256, 8);
      int rc;
      try {
        rc = (int) sigaction.invokeExact(signal, MemorySegment.NULL, old);
      } catch (Throwable t) {
        throw new AssertionError("sigaction " + signal + ": " + t, t);
      }
      assertEquals(0, rc, "sigaction " + signal);
      return old.get(JAVA_LONG, 0); // sa_handler, the first field on Linux
    }
  }
}
