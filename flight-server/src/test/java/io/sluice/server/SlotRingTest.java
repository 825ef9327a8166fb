package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.ShmLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/**
 * The ring as the cuda path uses it: offsets from 0 in a pool elsewhere (the device), released
 * through a header that holds no messages, and the control header's detached word.
 */
class SlotRingTest {
  @Test
  void slotsOfWholeAlignmentsStayAlignedAcrossWraps() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment header = arena.allocate(ShmLayout.HEADER_BYTES, 64);
      ShmLayout.writeHeader(header, 0);
      long slot = 3 * 256; // a batch rounded up to 256 bytes, as RankStreamer.toDevice does
      SlotRing ring = new SlotRing(header, 0, 4 * slot + 100);
      long seq = 0;
      for (int round = 0; round < 40; round++) {
        long at = ring.place(slot, () -> true);
        if (at < 0) { // full: the client releases the oldest, then there is room
          ShmLayout.release(header, seq - ring.unreleased());
          at = ring.place(slot, () -> true);
        }
        assertTrue(at >= 0 && at + slot <= 4 * slot + 100, "inside the pool: " + at);
        assertEquals(0, at % 256, "256-byte aligned: " + at);
        seq++;
      }
      assertEquals(seq, ring.nextSeq());
      ShmLayout.release(header, seq - 1);
      assertTrue(ring.awaitAllReleased(() -> true));
      assertThrows(IllegalArgumentException.class, () -> ring.place(5 * slot, () -> true));
    }
  }

  @Test
  void theDetachedWordStartsClearAndIsTheClientsToSet() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment header = arena.allocate(ShmLayout.HEADER_BYTES, 64);
      header.fill((byte) 0x7F);
      ShmLayout.writeHeader(header, 0);
      assertFalse(ShmLayout.detached(header), "a fresh header");
      assertEquals(0, ShmLayout.checkHeader(header, "control"));
      ShmLayout.release(header, 4);
      assertFalse(ShmLayout.detached(header), "releasing is not detaching");
      ShmLayout.detach(header);
      assertTrue(ShmLayout.detached(header));
      assertEquals(5, ShmLayout.released(header));
    }
  }
}
