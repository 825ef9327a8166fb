package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

class RingReaderTest {
  @BeforeAll
  static void needsIoUring() {
    assumeTrue(
        IoUring.isAvailable(), () -> "io_uring unavailable: " + IoUring.unavailabilityCause());
  }

  @Test
  void readsFromManyThreadsBeyondTheQueueDepth(@TempDir Path dir) throws Exception {
    byte[] data = new byte[3 << 20];
    new Random(11).nextBytes(data);
    Path file = Files.write(dir.resolve("d.bin"), data);
    try (RingReader reader = RingReader.start("test-ring", 8);
        NativeFile f = NativeFile.open(file, false);
        ExecutorService pool = Executors.newFixedThreadPool(6)) {
      List<Future<?>> jobs = new ArrayList<>();
      for (int t = 0; t < 6; t++) {
        long seed = t;
        jobs.add(
            pool.submit(
                () -> {
                  Random r = new Random(seed);
                  try (Arena arena = Arena.ofConfined()) {
                    for (int i = 0; i < 200; i++) {
                      int len = 1 + r.nextInt(64 << 10);
                      long off = r.nextLong(data.length - len);
                      MemorySegment buf = arena.allocate(len);
                      int n = reader.read(f.fd(), buf, off, 1, "d.bin").join();
                      assertEquals(len, n);
                      byte[] want = new byte[len];
                      System.arraycopy(data, (int) off, want, 0, len);
                      assertArrayEquals(want, buf.toArray(ValueLayout.JAVA_BYTE), "offset=" + off);
                    }
                  }
                  return null;
                }));
      }
      for (Future<?> j : jobs) {
        j.get();
      }
    }
  }

  /** Tiny reads complete at once, so the ring thread sleeps and wakes all the time. */
  @Test
  @Timeout(60)
  void noWakeUpIsLostUnderConstantSleepWakeTransitions(@TempDir Path dir) throws Exception {
    byte[] data = new byte[4096];
    new Random(5).nextBytes(data);
    Path file = Files.write(dir.resolve("w.bin"), data);
    int threads = 4;
    int reads = Integer.getInteger("sluice.test.wakeReads", 3000);
    try (RingReader reader = RingReader.start("test-ring", 4);
        NativeFile f = NativeFile.open(file, false);
        ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      List<Future<?>> jobs = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        jobs.add(
            pool.submit(
                () -> {
                  try (Arena arena = Arena.ofConfined()) {
                    MemorySegment buf = arena.allocate(1);
                    for (int i = 0; i < reads; i++) {
                      int off = i % data.length;
                      assertEquals(1, reader.read(f.fd(), buf, off, 1, "w.bin").join());
                      assertEquals(data[off], buf.get(ValueLayout.JAVA_BYTE, 0));
                    }
                  }
                  return null;
                }));
      }
      for (Future<?> j : jobs) {
        j.get();
      }
    }
  }

  @Test
  void endOfFileCompletesShortAndErrorsNameFileOffsetAndErrno(@TempDir Path dir)
      throws IOException {
    Path file = Files.write(dir.resolve("e.bin"), new byte[1000]);
    try (RingReader reader = RingReader.start("test-ring", 4);
        NativeFile f = NativeFile.open(file, false);
        Arena arena = Arena.ofConfined()) {
      assertEquals(10, reader.read(f.fd(), arena.allocate(100), 990, 1, "e.bin").join());
      assertEquals(0, reader.read(f.fd(), arena.allocate(100), 5000, 1, "e.bin").join());
      assertEquals(0, reader.read(f.fd(), arena.allocate(0), 0, 1, "e.bin").join());

      CompletionException e =
          assertThrows(
              CompletionException.class,
              () -> reader.read(-1, arena.allocate(8), 4096, 1, "bad.bin").join());
      NativeIoException cause = assertInstanceOf(NativeIoException.class, e.getCause());
      assertEquals(Errno.EBADF, cause.errno());
      assertEquals(
          "read file=bad.bin offset=4096 length=8 failed: errno=EBADF (9, bad file descriptor)",
          cause.getMessage());

      CompletionException heap =
          assertThrows(
              CompletionException.class,
              () -> reader.read(f.fd(), MemorySegment.ofArray(new byte[8]), 0, 1, "e.bin").join());
      assertInstanceOf(IllegalArgumentException.class, heap.getCause());
    }
  }

  @Test
  void closeFailsLaterReadsAndIsIdempotent(@TempDir Path dir) throws IOException {
    Path file = Files.write(dir.resolve("c.bin"), new byte[100]);
    RingReader reader = RingReader.start("test-ring", 4);
    try (NativeFile f = NativeFile.open(file, false);
        Arena arena = Arena.ofConfined()) {
      assertEquals(100, reader.read(f.fd(), arena.allocate(100), 0, 1, "c.bin").join());
      reader.close();
      reader.close();
      CompletableFuture<Integer> late = reader.read(f.fd(), arena.allocate(100), 0, 1, "c.bin");
      CompletionException e = assertThrows(CompletionException.class, late::join);
      assertInstanceOf(IOException.class, e.getCause());
      assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().getMessage());
      assertTrue(e.getCause().getMessage().contains("file=c.bin"), e.getCause().getMessage());
    }
  }

  @Test
  void queueDepthIsValidated() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> RingReader.start("x", 0));
    assertEquals("queueDepth=0 must be in [1, 4096]", e.getMessage());
  }
}
