package io.sluice.peer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;

/**
 * Striping over two paths to one peer (two servers of the same samples on loopback stand for two
 * NICs): shares follow the weights, a dead path's share is redone on the other, and a path comes
 * back once its server does.
 */
class StripedChannelTest extends PeerTransportConformance {
  @Override
  PeerTransport newTransport(long fetchTimeoutMs) {
    return TcpTransport.create(2, fetchTimeoutMs);
  }

  private long[] holdMany(int count, int lengthBytes) {
    long[] ids = new long[count];
    for (int i = 0; i < count; i++) {
      ids[i] = i;
      hold(i, lengthBytes);
    }
    return ids;
  }

  private MemorySegment[] dstsFor(long[] ids) {
    int[] lengths = new int[ids.length];
    for (int i = 0; i < ids.length; i++) {
      lengths[i] = (int) held.samples.get(ids[i]).byteSize();
    }
    return dsts(lengths);
  }

  @Test
  void sharesFollowTheWeights() throws Exception {
    long[] ids = holdMany(64, 16 << 10);
    try (PeerServer a = serve();
        PeerServer b = serve();
        StripedChannel ch =
            new StripedChannel(
                transport,
                List.of(new PeerPath(a.address(), 1), new PeerPath(b.address(), 3)),
                1000)) {
      MemorySegment[] dst = dstsFor(ids);
      boolean[] filled = get(ch.fetch(DATASET, ids, dst));
      for (int i = 0; i < ids.length; i++) {
        assertTrue(filled[i]);
        assertSample(ids[i], dst[i]);
      }
      assertEquals(16L * (16 << 10), ch.paths().get(0).bytes(), "a quarter over the weight-1 path");
      assertEquals(
          48L * (16 << 10), ch.paths().get(1).bytes(), "three quarters over the weight-3 path");
      assertEquals(16, a.stats().samplesSent());
      assertEquals(48, b.stats().samplesSent());
    }
  }

  @Test
  void smallFetchesTakeTurnsByWeight() throws Exception {
    holdMany(8, 100);
    try (PeerServer a = serve();
        PeerServer b = serve();
        StripedChannel ch =
            new StripedChannel(
                transport,
                List.of(new PeerPath(a.address(), 1), new PeerPath(b.address(), 2)),
                1000)) {
      for (int i = 0; i < 30; i++) {
        assertArrayEquals(
            new boolean[] {true}, get(ch.fetch(DATASET, new long[] {i % 8}, dsts(100))));
      }
      assertEquals(10, a.stats().fetches());
      assertEquals(20, b.stats().fetches());
    }
  }

  @Test
  void aDeadPathsShareIsRedoneOnTheOthers() throws Exception {
    long[] ids = holdMany(32, 32 << 10);
    PeerServer b = serve();
    try (PeerServer a = serve();
        StripedChannel ch =
            new StripedChannel(
                transport,
                List.of(new PeerPath(a.address(), 1), new PeerPath(b.address(), 1)),
                60_000)) {
      get(ch.fetch(DATASET, ids, dstsFor(ids))); // both paths connected and used
      b.close();
      for (int round = 0; round < 3; round++) {
        MemorySegment[] dst = dstsFor(ids);
        boolean[] filled = get(ch.fetch(DATASET, ids, dst));
        for (int i = 0; i < ids.length; i++) {
          assertTrue(filled[i], "round " + round + " sample " + i);
          assertSample(ids[i], dst[i]);
        }
      }
      assertEquals(1, ch.paths().get(1).failures());
      assertEquals(0, ch.paths().get(0).failures());
      assertEquals(
          16 + 3 * 32, a.stats().samplesSent(), "path a took the whole load once b was gone");
      assertLeasesBack();
    }
  }

  @Test
  void noPathLeftFailsTheFetch() throws Exception {
    long[] ids = holdMany(4, 1 << 10);
    PeerServer a = serve();
    PeerServer b = serve();
    try (StripedChannel ch =
        new StripedChannel(
            transport,
            List.of(new PeerPath(a.address(), 1), new PeerPath(b.address(), 1)),
            60_000)) {
      get(ch.fetch(DATASET, ids, dstsFor(ids)));
      a.close();
      b.close();
      ExecutionException e = null;
      for (int i = 0; i < 50 && e == null; i++) {
        try {
          get(ch.fetch(DATASET, ids, dstsFor(ids)));
          Thread.sleep(50);
        } catch (ExecutionException x) {
          e = x;
        }
      }
      assertInstanceOf(PeerException.class, e == null ? null : e.getCause());
      ExecutionException after =
          assertThrows(ExecutionException.class, () -> get(ch.fetch(DATASET, ids, dstsFor(ids))));
      assertTrue(
          after.getCause().getMessage().contains("no path left"), after.getCause().getMessage());
    }
  }

  @Test
  void aDroppedPathComesBackWithItsServer() throws Exception {
    long[] ids = holdMany(16, 32 << 10);
    PeerServer b = serve();
    InetSocketAddress bAddress = b.address();
    try (PeerServer a = serve();
        StripedChannel ch =
            new StripedChannel(
                transport, List.of(new PeerPath(a.address(), 1), new PeerPath(bAddress, 1)), 200)) {
      get(ch.fetch(DATASET, ids, dstsFor(ids)));
      b.close();
      get(ch.fetch(DATASET, ids, dstsFor(ids))); // b is dropped here
      try (PeerServer again = transport.serve(bAddress, held)) {
        Thread.sleep(300);
        get(ch.fetch(DATASET, ids, dstsFor(ids)));
        assertEquals(8, again.stats().samplesSent(), "b carries its half again");
      }
    }
  }
}
