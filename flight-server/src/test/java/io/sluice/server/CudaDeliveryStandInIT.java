package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.CudaSlot;
import io.sluice.client.Delivery;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.config.DaemonConfig;
import io.sluice.demo.DemoDataset;
import io.sluice.prefetch.PrefetchOptions;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's side of cuda delivery on a host without a GPU: a real daemon and the Java client,
 * with {@link HostDeviceMemory} standing in for the GPU (device memory is host memory here). Every
 * batch's descriptor is followed into the stand-in's pool and its ids and tokens checked against
 * the files; the handle comes once per stream; the Java client's releases free the slots; each pool
 * is freed once its client detached; nothing stays allocated. What this cannot show, the GPU path
 * itself (the driver calls, CUDA IPC, torch), is CudaDeliveryHwTest's.
 */
class CudaDeliveryStandInIT {
  private static final int SHARDS = 4;
  private static final int PER_SHARD = 300;
  private static final int SEQ_LEN = 96;
  private static final int BATCH = 16;

  @TempDir Path dir;

  @Test
  void cudaBatchesLieInThePoolWhereTheirDescriptorsSayExactlyOnce() throws Exception {
    DemoDataset.ensure(dir, SHARDS, PER_SHARD, SEQ_LEN);
    HostDeviceMemory gpu = new HostDeviceMemory();
    DaemonConfig config =
        DaemonConfig.builder().host("127.0.0.1").port(0).datasets(Map.of("t", dir)).build();
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceDaemon daemon =
            SluiceDaemon.start(config, PrefetchOptions.defaults(), new CudaDevices(d -> gpu, 1));
        SluiceClient client = SluiceClient.connect(daemon.uri(), alloc)) {
      Set<Long> seen = new HashSet<>();
      int world = 2;
      for (int rank = 0; rank < world; rank++) {
        List<Long> ids = read(client, gpu, StreamRequest.of("t", rank, world, BATCH));
        for (long id : ids) {
          assertTrue(seen.add(id), "sample " + id + " delivered twice");
        }
      }
      assertEquals(SHARDS * PER_SHARD, seen.size(), "every sample once");

      try (RankStream auto =
          client.open(
              StreamRequest.of("t", 0, 1, BATCH).withDelivery(Delivery.AUTO).withDevice(0))) {
        assertTrue(auto.next());
        assertEquals(Delivery.CUDA, auto.metadata().delivery(), "auto with a device takes cuda");
      }
      try (RankStream auto =
          client.open(StreamRequest.of("t", 0, 1, BATCH).withDelivery(Delivery.AUTO))) {
        assertTrue(auto.next());
        assertEquals(Delivery.SHM, auto.metadata().delivery(), "auto without one does not");
      }

      // Each stream frees its pool once its client detached (the Java client does at once).
      long deadline = System.nanoTime() + 20_000_000_000L;
      while (gpu.deviceFrees < 3 && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      assertEquals(3, gpu.deviceFrees, "the three cuda streams' pools freed");
      assertTrue(gpu.device.isEmpty(), "no device memory left");
      assertTrue(gpu.host.isEmpty(), "no pinned staging left");
    }
  }

  /** One rank's cuda epoch, each batch checked in the stand-in's pool; the ids in order. */
  private static List<Long> read(SluiceClient client, HostDeviceMemory gpu, StreamRequest base) {
    List<Long> ids = new ArrayList<>();
    try (RankStream s = client.open(base.withDelivery(Delivery.CUDA).withDevice(0))) {
      long pool = -1;
      long seq = 0;
      while (s.next()) {
        assertEquals(Delivery.CUDA, s.metadata().delivery());
        CudaSlot slot = s.metadata().cuda();
        assertEquals(seq++, slot.seq());
        if (slot.seq() == 0) {
          assertNotNull(slot.handle(), "the first batch carries the pool's handle");
          pool =
              MemorySegment.ofArray(Base64.getDecoder().decode(slot.handle()))
                  .get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
        } else {
          assertNull(slot.handle(), "the handle comes once");
        }
        assertEquals(0, slot.offset() % RankStreamer.DEVICE_ALIGNMENT, "slot aligned");
        CudaSlot.Column idCol = slot.columns().get(0);
        CudaSlot.Column tokCol = slot.columns().get(1);
        assertEquals("uint64", idCol.dtype());
        assertEquals("uint16", tokCol.dtype());
        assertEquals(List.of((long) BATCH, (long) SEQ_LEN), tokCol.shape());
        assertEquals(0, tokCol.offset() % RankStreamer.DEVICE_ALIGNMENT, "tokens aligned");
        long[] batchIds =
            gpu.at(pool, idCol.offset(), 8L * BATCH)
                .toArray(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
        short[] tokens =
            gpu.at(pool, tokCol.offset(), 2L * BATCH * SEQ_LEN)
                .toArray(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
        for (int i = 0; i < BATCH; i++) {
          int bad = DemoDataset.firstBadToken(batchIds[i], tokens, i * SEQ_LEN, SEQ_LEN);
          assertEquals(-1, bad, "sample " + batchIds[i] + " token " + bad);
          if (i < BATCH - s.metadata().padded()) {
            ids.add(batchIds[i]);
          }
        }
      }
    }
    return ids;
  }
}
