package io.sluice.read;

class MmapReadBackendTest extends ReadBackendConformanceTest {
  @Override
  protected ReadBackend newBackend() {
    return new MmapReadBackend();
  }
}
