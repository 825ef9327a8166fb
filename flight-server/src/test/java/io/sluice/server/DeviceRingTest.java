package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.ShmLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Base64;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A cuda stream's pool bookkeeping, driven by {@link HostDeviceMemory} (no GPU here): uploads land
 * where the slot says, the pool is freed only once the client says it closed its mapping (else at
 * the daemon's stop), and nothing is left allocated or reserved. The GPU itself is
 * CudaDeliveryHwTest's.
 */
class DeviceRingTest {
  @TempDir Path dir;

  private static MemorySegment mapControl(Arena arena, Path control) throws Exception {
    try (FileChannel ch =
        FileChannel.open(control, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      return ch.map(FileChannel.MapMode.READ_WRITE, 0, ShmLayout.HEADER_BYTES, arena);
    }
  }

  @Test
  void batchesLandInTheirSlotsAndThePoolGoesOnceTheClientDetached() throws Exception {
    HostDeviceMemory gpu = new HostDeviceMemory();
    try (BufferAllocator budget = new RootAllocator(1 << 20);
        CudaDevices devices = new CudaDevices(d -> gpu, 1);
        Arena client = Arena.ofShared()) {
      Path control = dir.resolve("c1");
      DeviceRing ring = DeviceRing.create(control, devices, 0, 4096, 1024, budget);
      assertEquals(1024 + ShmLayout.HEADER_BYTES, budget.getAllocatedMemory(), "staging reserved");
      long pool = handleAddress(Base64.getDecoder().decode(ring.handle()));
      MemorySegment header = mapControl(client, control);
      assertEquals(0, ShmLayout.checkHeader(header, control.toString()));

      for (int batch = 0; batch < 12; batch++) { // wraps the 4 KiB pool three times
        long at = ring.place(1024, () -> true);
        if (at < 0) {
          ShmLayout.release(header, ring.nextSeq() - 4); // the client lets the oldest go
          at = ring.place(1024, () -> true);
        }
        ring.staging().fill((byte) batch);
        ring.upload(at, 1000);
        byte[] want = new byte[1000];
        java.util.Arrays.fill(want, (byte) batch);
        assertArrayEquals(want, gpu.at(pool, at, 1000).toArray(ValueLayout.JAVA_BYTE));
      }
      ShmLayout.release(header, ring.nextSeq() - 1);
      assertTrue(ring.awaitAllReleased(() -> true));

      ShmLayout.detach(header); // the client closed its IPC mapping
      ring.close(5_000);
      assertEquals(1, gpu.deviceFrees, "the pool was freed");
      assertTrue(gpu.host.isEmpty(), "the staging buffer was freed");
      assertEquals(0, gpu.streams);
      assertFalse(Files.exists(control), "the control file is gone");
      assertEquals(0, budget.getAllocatedMemory(), "the staging reservation is back");
    }
  }

  @Test
  void aClientThatNeverDetachesLeavesItsPoolToTheDaemonsStop() throws Exception {
    HostDeviceMemory gpu = new HostDeviceMemory();
    try (BufferAllocator budget = new RootAllocator(1 << 20)) {
      CudaDevices devices = new CudaDevices(d -> gpu, 1);
      DeviceRing ring = DeviceRing.create(dir.resolve("c2"), devices, 0, 4096, 1024, budget);
      long t0 = System.nanoTime();
      ring.close(200);
      assertTrue(System.nanoTime() - t0 >= 200_000_000L, "waited for the client");
      assertEquals(0, gpu.deviceFrees, "not freed while the client may still map it");
      assertEquals(1, devices.deferredPools());
      assertEquals(0, budget.getAllocatedMemory());
      devices.close();
      assertEquals(1, gpu.deviceFrees, "freed at the daemon's stop");
      assertTrue(gpu.device.isEmpty());
    }
  }

  @Test
  void aStagingBufferOverTheBudgetOpensNothing() throws Exception {
    HostDeviceMemory gpu = new HostDeviceMemory();
    try (BufferAllocator budget = new RootAllocator(8192);
        CudaDevices devices = new CudaDevices(d -> gpu, 1)) {
      assertNull(DeviceRing.create(dir.resolve("c3"), devices, 0, 1 << 20, 1 << 16, budget));
      assertTrue(gpu.device.isEmpty() && gpu.host.isEmpty());
      assertFalse(Files.exists(dir.resolve("c3")));
    }
  }

  private static long handleAddress(byte[] handle) {
    return MemorySegment.ofArray(handle).get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
  }
}
