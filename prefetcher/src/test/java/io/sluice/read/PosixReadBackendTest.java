package io.sluice.read;

class PosixReadBackendTest extends ReadBackendConformanceTest {
  @Override
  protected ReadBackend newBackend() {
    return new PosixReadBackend();
  }
}
