package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RingTest {
  @BeforeAll
  static void needsIoUring() {
    assumeTrue(
        IoUring.isAvailable(), () -> "io_uring unavailable: " + IoUring.unavailabilityCause());
  }

  @Test
  void nopRoundTrip() throws IOException {
    try (Ring ring = Ring.open(8)) {
      assertEquals(8, ring.sqEntries());
      assertTrue(ring.cqEntries() >= 8);
      assertTrue(ring.supportsOp(RingDescriptor.IORING_OP_READ));
      for (int i = 0; i < 8; i++) {
        assertTrue(ring.prepareNop(100 + i));
      }
      assertFalse(ring.prepareNop(999), "SQ holds 8");
      assertEquals(8, ring.submitAndWait(8));
      Map<Long, Integer> seen = new HashMap<>();
      assertEquals(8, ring.reap((ud, res, flags) -> seen.put(ud, res)));
      assertEquals(8, seen.size());
      seen.forEach((ud, res) -> assertEquals(0, res, "user_data=" + ud));
      assertEquals(8, ring.sqSpace());
    }
  }

  @Test
  void manyReadsInFlightAndEndOfFile(@TempDir Path dir) throws IOException {
    byte[] data = new byte[1 << 20];
    new Random(7).nextBytes(data);
    Path file = Files.write(dir.resolve("data.bin"), data);
    int reads = 64;
    int chunk = data.length / reads;
    try (Ring ring = Ring.open(reads + 1);
        NativeFile f = NativeFile.open(file, false);
        Arena arena = Arena.ofConfined()) {
      MemorySegment buf = arena.allocate((long) reads * chunk + 100);
      for (int i = 0; i < reads; i++) {
        assertTrue(
            ring.prepareRead(f.fd(), buf.address() + (long) i * chunk, chunk, (long) i * chunk, i));
      }
      // One more, straddling the end: a short read.
      assertTrue(
          ring.prepareRead(f.fd(), buf.address() + data.length, 100, data.length - 10, 1000));
      ring.submitAndWait(reads + 1);
      int[] results = new int[reads + 1];
      int n = 0;
      while (n < reads + 1) {
        n += ring.reap((ud, res, flags) -> results[ud == 1000 ? reads : (int) ud] = res);
        if (n < reads + 1) {
          ring.submitAndWait(1);
        }
      }
      for (int i = 0; i < reads; i++) {
        assertEquals(chunk, results[i], "read " + i);
      }
      assertEquals(10, results[reads]);
      byte[] got = buf.asSlice(0, data.length).toArray(ValueLayout.JAVA_BYTE);
      assertArrayEquals(data, got);
    }
  }

  @Test
  void aRingBelongsToTheThreadThatOpenedIt() throws Exception {
    try (Ring ring = Ring.open(4)) {
      CompletableFuture<Throwable> other =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  ring.prepareNop(1);
                  return null;
                } catch (Throwable t) {
                  return t;
                }
              });
      assertTrue(other.get() instanceof WrongThreadException, String.valueOf(other.get()));
    }
  }

  @Test
  void badArgumentsNameTheValue() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ring.open(0));
    assertEquals("entries=0 must be in [1, 32768]", e.getMessage());
  }
}
