package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class IoUringTest {
  @Test
  void reportsAvailabilityOrExplainsWhyNot() {
    Throwable cause = IoUring.unavailabilityCause();
    if (IoUring.isAvailable()) {
      assertNull(cause);
      IoUring.ensureAvailability();
    } else {
      System.out.println("io_uring unavailable here: " + cause);
      UnsupportedOperationException e =
          assertThrows(UnsupportedOperationException.class, IoUring::ensureAvailability);
      assertSame(cause, e.getCause());
      assertTrue(e.getMessage().contains(cause.getMessage()), e.getMessage());
    }
  }

  @Test
  void disablePropertyWinsOverAWorkingKernel() {
    Throwable cause =
        IoUring.probe(
            null,
            "true",
            () -> {
              throw new AssertionError("kernel probed although disabled");
            });
    assertEquals("io_uring disabled by -Dsluice.io_uring.disable=true", cause.getMessage());
    assertNull(IoUring.probe(null, "false", () -> null));
    assertNull(IoUring.probe(null, null, () -> null));
  }

  @Test
  void otherPlatformsAreRefusedByName() {
    assertNull(IoUring.platformCause("Linux", "amd64"));
    Throwable cause = IoUring.platformCause("Mac OS X", "aarch64");
    assertEquals("not Linux x86_64: os.name=Mac OS X os.arch=aarch64", cause.getMessage());
    assertSame(cause, IoUring.probe(cause, null, () -> null));
  }

  @Test
  void aThrowingKernelProbeBecomesTheCause() {
    UnsatisfiedLinkError boom = new UnsatisfiedLinkError("libc symbol syscall not found");
    Throwable cause =
        IoUring.probe(
            null,
            null,
            () -> {
              throw boom;
            });
    assertSame(boom, cause.getCause());
    assertTrue(cause.getMessage().contains("libc symbol syscall not found"), cause.getMessage());
  }

  @Test
  void setupErrnosBecomeAdvice() {
    NativeIoException enosys = new NativeIoException("io_uring_setup entries=4", Errno.ENOSYS);
    Throwable c = IoUring.explain(enosys, "0");
    assertTrue(
        c.getMessage().startsWith("io_uring_setup failed: ENOSYS (kernel without io_uring"),
        c.getMessage());
    assertSame(enosys, c.getCause());

    NativeIoException eperm = new NativeIoException("io_uring_setup entries=4", Errno.EPERM);
    assertEquals(
        "io_uring_setup failed: EPERM (io_uring disabled by sysctl kernel.io_uring_disabled=2)",
        IoUring.explain(eperm, "2").getMessage());
    assertTrue(IoUring.explain(eperm, "1").getMessage().contains("kernel.io_uring_group"));
    assertTrue(IoUring.explain(eperm, "0").getMessage().contains("seccomp"));
    assertTrue(
        IoUring.explain(new NativeIoException("io_uring_setup", Errno.ENOMEM), null)
            .getMessage()
            .contains("RLIMIT_MEMLOCK"));
  }

  @Test
  void errnoNames() {
    assertEquals("EINVAL", Errno.name(22));
    assertEquals("EINVAL (22, invalid argument)", Errno.describe(22));
    assertEquals("errno 4000", Errno.describe(4000));
    NativeIoException e = new NativeIoException("read file=/x offset=0 length=1", Errno.EIO);
    assertEquals(
        "read file=/x offset=0 length=1 failed: errno=EIO (5, input/output error)", e.getMessage());
    assertInstanceOf(java.io.IOException.class, e);
    assertFalse(e.getMessage().isEmpty());
  }
}
