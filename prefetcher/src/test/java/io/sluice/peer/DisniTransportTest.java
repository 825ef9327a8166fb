package io.sluice.peer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.sluice.nativeio.Rdma;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What can be checked without an RDMA device; RdmaHwTest (hw-tests) moves bytes. */
class DisniTransportTest {
  @Test
  void createFailsFastNamingTheCause() {
    assumeFalse(Rdma.isDisniAvailable(), "DiSNI can run here: RdmaHwTest covers it");
    Throwable cause = Rdma.disniCause();
    PeerException e = assertThrows(PeerException.class, DisniTransport::create);
    assertEquals("disni unavailable: " + cause.getMessage(), e.getMessage());
    assertSame(cause, e.getCause());
    if (!Rdma.isAvailable()) {
      assertTrue(e.getMessage().contains(Rdma.unavailabilityCause().getMessage()), e.getMessage());
    }
  }

  @Test
  void everyControlMessageFitsItsBuffer() {
    String longestName = "d".repeat(PeerWire.MAX_DATASET_BYTES);
    int fetch = PeerWire.fetchBytes(longestName, DisniTransport.IDS_PER_MESSAGE);
    assertTrue(fetch <= DisniTransport.CONTROL_BYTES, "fetch of " + fetch + " bytes");
    int answer =
        PeerWire.answerHeaderBytes(DisniTransport.IDS_PER_MESSAGE) + DisniTransport.STAGED_BYTES;
    assertTrue(answer <= DisniTransport.CONTROL_BYTES, "answer of " + answer + " bytes");
    // PeerWire.error cuts the message at 2000 chars, at most 3 UTF-8 bytes each
    assertTrue(PeerWire.PREAMBLE_BYTES + 2 + 3 * 2000 <= DisniTransport.CONTROL_BYTES);
    assertTrue(DisniTransport.RELEASE_BYTES <= DisniTransport.CONTROL_BYTES);
  }

  @Test
  void stagedPartRoundTrips() throws PeerException {
    ByteBuffer buffer = PeerWire.allocate(64);
    DisniTransport.putStaged(buffer, new DisniTransport.Staged(0x7f00_1234_5000L, 0xCAFE_F00D, 31));
    buffer.flip();
    assertEquals(DisniTransport.STAGED_BYTES, buffer.remaining());
    assertEquals(
        new DisniTransport.Staged(0x7f00_1234_5000L, 0xCAFE_F00D, 31),
        DisniTransport.getStaged(buffer));

    ByteBuffer truncated = PeerWire.allocate(8).putLong(1).flip();
    PeerException e = assertThrows(PeerException.class, () -> DisniTransport.getStaged(truncated));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    ByteBuffer badSlot = PeerWire.allocate(16).putLong(0).putInt(0).putInt(-2).flip();
    assertThrows(PeerException.class, () -> DisniTransport.getStaged(badSlot));
  }

  @Test
  void releaseIsAPeerWireMessage() throws PeerException {
    ByteBuffer buffer = PeerWire.allocate(64);
    DisniTransport.putRelease(buffer, 42, 7);
    buffer.flip();
    assertEquals(DisniTransport.RELEASE_BYTES, buffer.remaining());
    assertEquals(PeerWire.RELEASE, PeerWire.kind(buffer));
    assertEquals(42, buffer.getLong());
    assertEquals(7, buffer.getInt());
  }

  @Test
  void fetchesAreCutBySampleCountAndBytes() {
    assertEquals(List.of(), DisniTransport.chunks(new long[0], 4, 100));
    assertChunks(new int[][] {{0, 1, 2}}, DisniTransport.chunks(new long[] {10, 20, 30}, 4, 100));
    // at most 2 samples per chunk
    assertChunks(
        new int[][] {{0, 1}, {2, 3}, {4}},
        DisniTransport.chunks(new long[] {1, 1, 1, 1, 1}, 2, 100));
    // at most 100 bytes per chunk; exactly 100 fits
    assertChunks(
        new int[][] {{0, 1}, {2}, {3}}, DisniTransport.chunks(new long[] {60, 40, 70, 50}, 4, 100));
    // a sample longer than a slot is in no chunk; zero-length samples ride along
    assertChunks(
        new int[][] {{0, 2, 3}}, DisniTransport.chunks(new long[] {0, 101, 100, 0}, 4, 100));
  }

  @Test
  void ipv6WildcardBecomesIpv4AndOtherIpv6IsRefused() throws PeerException {
    assertEquals(
        new InetSocketAddress("0.0.0.0", 7000),
        DisniTransport.ipv4(new InetSocketAddress("::", 7000)));
    InetSocketAddress v4 = new InetSocketAddress("127.0.0.1", 7000);
    assertSame(v4, DisniTransport.ipv4(v4));
    PeerException e =
        assertThrows(
            PeerException.class, () -> DisniTransport.ipv4(new InetSocketAddress("::1", 7000)));
    assertTrue(e.getMessage().contains("IPv4 only"), e.getMessage());
  }

  private static void assertChunks(int[][] expected, List<int[]> actual) {
    assertEquals(expected.length, actual.size(), "chunks");
    for (int i = 0; i < expected.length; i++) {
      assertArrayEquals(expected[i], actual.get(i), "chunk " + i);
    }
  }
}
