package io.sluice.read;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.sluice.nativeio.IoUring;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

class IoUringReadBackendTest extends ReadBackendConformanceTest {
  @Override
  protected ReadBackend newBackend() {
    return new IoUringReadBackend(false, 64);
  }

  @Override
  protected void assumeBackendAvailable() {
    assumeIoUring();
  }

  static void assumeIoUring() {
    if (!IoUring.isAvailable()) {
      System.out.println("skipping io_uring tests: " + IoUring.unavailabilityCause());
    }
    assumeTrue(
        IoUring.isAvailable(), () -> "io_uring unavailable: " + IoUring.unavailabilityCause());
  }

  @Test
  void nameAndMode() {
    assertEquals("io_uring", backend.name());
    assertFalse(((IoUringReadBackend) backend).direct());
    assertFalse(((IoUringReadBackend.UringFile) shared).directIo());
  }

  @Test
  void readsInFlightFinishWhenTheirFileIsClosed() throws IOException {
    ReadFile f = backend.open(file);
    List<CompletableFuture<Void>> futures = new ArrayList<>();
    List<ByteBuffer> bufs = new ArrayList<>();
    for (int i = 0; i < 64; i++) {
      ByteBuffer buf = ByteBuffer.allocateDirect(64 << 10);
      bufs.add(buf);
      futures.add(backend.readAsync(f, (long) i * (64 << 10), buf));
    }
    f.close(); // the fd stays open until the last of them completes
    CompletableFuture.allOf(futures.toArray(CompletableFuture[]::new)).join();
    for (int i = 0; i < 64; i++) {
      assertRead(new Range((long) i * (64 << 10), 64 << 10), bufs.get(i), "read " + i);
    }
  }

  @Test
  void refusesFilesOfAnotherBackend() throws IOException {
    try (PosixReadBackend posix = new PosixReadBackend();
        ReadFile foreign = posix.open(file)) {
      CompletionException e =
          assertThrows(
              CompletionException.class,
              () -> backend.readAsync(foreign, 0, ByteBuffer.allocateDirect(8)).join());
      assertInstanceOf(IllegalArgumentException.class, e.getCause());
      assertTrue(e.getCause().getMessage().contains("not opened by this io_uring backend"));
    }
  }

  @Test
  void readsAfterTheBackendClosesFailNamingTheFile() throws IOException {
    IoUringReadBackend other = new IoUringReadBackend();
    try (ReadFile f = other.open(file)) {
      other.close();
      IOException e =
          assertThrows(IOException.class, () -> f.readFully(0, ByteBuffer.allocateDirect(8)));
      assertTrue(e.getMessage().contains("file=" + file), e.getMessage());
      assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }
  }

  @Test
  void blockingOnTheRingThreadIsRefusedInsteadOfDeadlocking() {
    // A dependent runs on the ring thread when attached before its read completes. One read at a
    // time lost that race on a loaded 2-core machine 50 times in a row: the ring thread woke on
    // the caller's core and finished the read before the caller attached. So 16 reads of 4 MiB
    // go in first (the ring serves them one after another) and dependents are attached from the
    // last one back: the later reads are still running when theirs arrive.
    ByteBuffer target = ByteBuffer.allocateDirect(4 << 20);
    for (int attempt = 0; attempt < 20; attempt++) {
      List<CompletableFuture<?>> reads = new ArrayList<>();
      for (int r = 0; r < 16; r++) {
        reads.add(backend.readAsync(shared, 0, target.duplicate()));
      }
      List<CompletableFuture<String>> outcomes = new ArrayList<>();
      for (CompletableFuture<?> read : reads.reversed()) {
        outcomes.add(read.thenApply(ignored -> readFullyHere()));
      }
      List<String> onRing =
          outcomes.stream()
              .map(CompletableFuture::join) // every read done before the file may close
              .filter(outcome -> !outcome.equals("ran on the caller"))
              .toList();
      for (String outcome : onRing) {
        assertTrue(outcome.startsWith(IllegalStateException.class.getName()), outcome);
        assertTrue(outcome.contains("use readAsync"), outcome);
      }
      if (!onRing.isEmpty()) {
        return;
      }
    }
    throw new AssertionError("no dependent ran on the ring thread in 20 attempts of 16 reads");
  }

  /** What a blocking read does on this thread: refused on the ring thread, else done. */
  private String readFullyHere() {
    if (!Thread.currentThread().getName().startsWith("sluice-io_uring-")) {
      return "ran on the caller";
    }
    try {
      shared.readFully(0, ByteBuffer.allocateDirect(8));
      return "readFully returned on the ring thread";
    } catch (IOException | RuntimeException e) {
      return e.toString();
    }
  }

  @Test
  void queueDepthIsValidatedWithItsValue() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> new IoUringReadBackend(false, 0));
    assertEquals("queueDepth=0 must be in [1, 4096]", e.getMessage());
  }

  @Test
  void manyVirtualThreadsReadAtOnce() throws Exception {
    // Each parks in readFully (no carrier pinned, unlike FileChannel) while the ring reads.
    List<Thread> threads = new ArrayList<>();
    List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
    for (int t = 0; t < 64; t++) {
      long offset = (long) t * 4099;
      threads.add(
          Thread.ofVirtual()
              .start(
                  () -> {
                    try {
                      ByteBuffer buf = ByteBuffer.allocateDirect(100_000);
                      shared.readFully(offset, buf);
                      assertRead(new Range(offset, 100_000), buf, "offset " + offset);
                    } catch (Throwable e) {
                      failures.add(e);
                    }
                  }));
    }
    for (Thread t : threads) {
      t.join();
    }
    assertTrue(failures.isEmpty(), failures.toString());
  }
}
