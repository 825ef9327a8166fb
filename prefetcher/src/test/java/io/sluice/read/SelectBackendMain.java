package io.sluice.read;

import io.sluice.nativeio.IoUring;

/**
 * Run by {@link ReadBackendsTest} in a fresh JVM (so {@link IoUring} probes again, e.g. with {@code
 * -Dsluice.io_uring.disable=true}): prints what each choice gives, one {@code key=value} a line.
 */
public final class SelectBackendMain {
  private SelectBackendMain() {}

  public static void main(String[] args) {
    System.out.println("available=" + IoUring.isAvailable());
    System.out.println("cause=" + IoUring.unavailabilityCause());
    try (ReadBackend first = ReadBackends.select("auto");
        ReadBackend second = ReadBackends.select("auto")) {
      System.out.println("auto=" + first.name());
      System.out.println("auto.again=" + second.name());
    }
    try (ReadBackend explicit = ReadBackends.select("io_uring")) {
      System.out.println("io_uring=" + explicit.name());
    } catch (IllegalStateException e) {
      System.out.println("io_uring.error=" + e.getMessage());
      System.out.println("io_uring.cause=" + e.getCause().getCause());
    }
  }
}
