package io.sluice.hw;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.nativeio.Rdma;
import io.sluice.nativeio.Ucx;
import io.sluice.peer.DisniTransport;
import io.sluice.peer.HeldSamples;
import io.sluice.peer.PeerChannel;
import io.sluice.peer.PeerServer;
import io.sluice.peer.PeerServerStats;
import io.sluice.peer.PeerTransport;
import io.sluice.peer.UcxTransport;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Samples cross an RDMA NIC between a server and a channel of one peer transport on this host:
 * {@code ucx} over verbs, and {@code disni}. Both ends listen and connect on the first RDMA
 * device's IPv4 address, so the bytes go through the NIC (loopback inside the HCA).
 */
@Tag("hw")
@Tag("rdma")
class RdmaHwTest {
  private static final String DATASET = "hw-rdma";
  private static final long TIMEOUT_S = 30;

  /** Sample id to length: odd sizes, one byte, and one over a MiB. */
  private static final Map<Long, Integer> SMALL = Map.of(1L, 4096, 2L, 1, 3L, (1 << 20) + 7);

  /** Enough 1 MiB samples that one fetch needs more chunks than a disni channel has in flight. */
  private static final int BULK_SAMPLES = 48;

  private static final long BULK_FIRST_ID = 1000;

  @Test
  void ucxMovesSamplesOverVerbs() throws Exception {
    Hardware.need(Rdma.isAvailable(), "RDMA device", why(Rdma.unavailabilityCause()));
    Hardware.need(Ucx.isAvailable(), "UCX", why(Ucx.unavailabilityCause()));
    try (PeerTransport transport = UcxTransport.create()) {
      roundTrip(transport);
    }
  }

  @Test
  void disniMovesSamples() throws Exception {
    Hardware.need(Rdma.isDisniAvailable(), "DiSNI", why(Rdma.disniCause()));
    try (PeerTransport transport = DisniTransport.create()) {
      roundTrip(transport);
    }
  }

  private static String why(Throwable cause) {
    return cause == null ? "" : cause.getMessage();
  }

  private static void roundTrip(PeerTransport transport) throws Exception {
    InetAddress ip = rdmaAddress();
    System.out.println("[hw-tests] " + transport.name() + " over " + ip + " " + Rdma.devices());
    try (Arena arena = Arena.ofShared()) {
      Map<Long, MemorySegment> held = new HashMap<>();
      SMALL.forEach((id, length) -> held.put(id, pattern(arena, id, length)));
      for (int i = 0; i < BULK_SAMPLES; i++) {
        held.put(BULK_FIRST_ID + i, pattern(arena, BULK_FIRST_ID + i, 1 << 20));
      }
      AtomicInteger leases = new AtomicInteger();
      HeldSamples samples =
          (dataset, id) -> {
            MemorySegment bytes = DATASET.equals(dataset) ? held.get(id) : null;
            if (bytes == null) {
              return null;
            }
            leases.incrementAndGet();
            return new HeldSamples.Lease() {
              @Override
              public MemorySegment bytes() {
                return bytes;
              }

              @Override
              public void close() {
                leases.decrementAndGet();
              }
            };
          };

      try (PeerServer server = transport.serve(new InetSocketAddress(ip, 0), samples);
          PeerChannel channel = transport.connect(server.address())) {
        // Three held samples and one the server does not hold.
        long[] ids = {1, 2, 3, 99};
        MemorySegment[] dsts = {
          arena.allocate(SMALL.get(1L)),
          arena.allocate(SMALL.get(2L)),
          arena.allocate(SMALL.get(3L)),
          arena.allocate(16)
        };
        boolean[] filled = channel.fetch(DATASET, ids, dsts).get(TIMEOUT_S, TimeUnit.SECONDS);
        assertArrayEquals(new boolean[] {true, true, true, false}, filled, "filled");
        for (int i = 0; i < 3; i++) {
          assertEquals(-1, held.get(ids[i]).mismatch(dsts[i]), "bytes of sample " + ids[i]);
        }

        // A sample held with another length than asked (a changed object) is not sent.
        MemorySegment shorter = arena.allocate(SMALL.get(1L) - 1);
        assertArrayEquals(
            new boolean[] {false},
            channel
                .fetch(DATASET, new long[] {1}, new MemorySegment[] {shorter})
                .get(TIMEOUT_S, TimeUnit.SECONDS),
            "a sample of another length");

        long[] bulkIds = new long[BULK_SAMPLES];
        MemorySegment[] bulk = new MemorySegment[BULK_SAMPLES];
        for (int i = 0; i < BULK_SAMPLES; i++) {
          bulkIds[i] = BULK_FIRST_ID + i;
          bulk[i] = arena.allocate(1 << 20);
        }
        boolean[] bulkFilled =
            channel.fetch(DATASET, bulkIds, bulk).get(TIMEOUT_S, TimeUnit.SECONDS);
        for (int i = 0; i < BULK_SAMPLES; i++) {
          assertTrue(bulkFilled[i], "bulk sample " + bulkIds[i] + " filled");
          assertEquals(-1, held.get(bulkIds[i]).mismatch(bulk[i]), "bytes of " + bulkIds[i]);
        }

        PeerServerStats stats = server.stats();
        assertEquals(3 + BULK_SAMPLES, stats.samplesSent(), "samplesSent " + stats);
        assertEquals(2, stats.samplesMissed(), "samplesMissed " + stats);
        assertEquals(
            SMALL.values().stream().mapToLong(Integer::longValue).sum()
                + (long) BULK_SAMPLES * (1 << 20),
            stats.bytesSent(),
            "bytesSent " + stats);
        assertEquals(0, stats.badRequests(), "badRequests " + stats);
      }
      assertEquals(0, leases.get(), "leases still open after the server closed");
    }
  }

  /** Each byte depends on the sample id and its offset, so a mix-up of samples shows. */
  private static MemorySegment pattern(Arena arena, long id, int length) {
    MemorySegment segment = arena.allocate(length);
    for (int i = 0; i < length; i++) {
      segment.set(JAVA_BYTE, i, (byte) (id * 31 + i * 7));
    }
    return segment;
  }

  /**
   * An IPv4 address of the first RDMA device's network interface (RoCE, IPoIB), else of the first
   * interface that is up and not loopback.
   */
  private static InetAddress rdmaAddress() throws IOException {
    List<NetworkInterface> candidates = new ArrayList<>();
    Path netdevs = Path.of(Rdma.SYSFS_DEVICES, Rdma.devices().getFirst(), "device", "net");
    try (Stream<Path> names = Files.list(netdevs)) {
      for (Path name : names.toList()) {
        NetworkInterface nic = NetworkInterface.getByName(name.getFileName().toString());
        if (nic != null) {
          candidates.add(nic);
        }
      }
    } catch (IOException e) {
      // the device names no network interface: any will do
    }
    for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
      if (nic.isUp() && !nic.isLoopback()) {
        candidates.add(nic);
      }
    }
    for (NetworkInterface nic : candidates) {
      for (InetAddress address : Collections.list(nic.getInetAddresses())) {
        if (address instanceof Inet4Address) {
          return address;
        }
      }
    }
    Hardware.need(false, "an IPv4 address", "no network interface up with one");
    throw new AssertionError("unreachable");
  }
}
