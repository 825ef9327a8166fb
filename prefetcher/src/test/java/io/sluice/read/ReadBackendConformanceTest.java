package io.sluice.read;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.EOFException;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The contract every {@link ReadBackend} meets, run once per backend by a subclass ({@code
 * PosixReadBackendTest}, {@code IoUringReadBackendTest}, ...). Every read is compared byte for byte
 * with what was written.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ReadBackendConformanceTest {
  /** A bit over 8 MiB: not a multiple of any page or block size. */
  static final int FILE_BYTES = (8 << 20) + 12_345;

  static final int PAGE = 4096;

  protected Path dir;
  protected byte[] data;
  protected long crc;
  protected Path file;
  protected ReadBackend backend;
  protected ReadFile shared;

  /** A new backend under test; the suite closes it. */
  protected abstract ReadBackend newBackend();

  /** Skips the suite (with the reason printed) where the backend cannot run here. */
  protected void assumeBackendAvailable() {}

  /** Where test files live; O_DIRECT suites need a real file system. */
  protected Path dataDir(Path tempDir) throws IOException {
    return tempDir;
  }

  @BeforeAll
  void setUp(@TempDir Path tempDir) throws IOException {
    assumeBackendAvailable();
    dir = dataDir(tempDir);
    data = new byte[FILE_BYTES];
    new Random(42).nextBytes(data);
    CRC32C c = new CRC32C();
    c.update(data);
    crc = c.getValue();
    file = Files.write(dir.resolve("conformance.bin"), data);
    backend = newBackend();
    shared = backend.open(file);
  }

  @AfterAll
  void tearDown() throws IOException {
    if (shared != null) {
      shared.close();
    }
    if (backend != null) {
      backend.close();
    }
  }

  @Test
  void opensWithPathAndLength() {
    assertEquals(file, shared.path());
    assertEquals(FILE_BYTES, shared.lengthBytes());
  }

  @Test
  void wholeFileInChunksMatchesTheChecksumOfWhatWasWritten() throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    CRC32C c = new CRC32C();
    for (long off = 0; off < FILE_BYTES; off += buf.capacity()) {
      buf.clear().limit((int) Math.min(buf.capacity(), FILE_BYTES - off));
      shared.readFully(off, buf);
      assertEquals(buf.limit(), buf.position(), "position at limit after a read");
      c.update(buf.flip());
    }
    assertEquals(crc, c.getValue());
  }

  @Test
  void randomOffsetsAndLengthsIntoDirectBuffers() throws IOException {
    Random r = new Random(1);
    for (int i = 0; i < 300; i++) {
      Range range = randomRange(r);
      ByteBuffer buf = directBuffer(r, range.length);
      shared.readFully(range.offset, buf);
      assertRead(range, buf, "read " + i);
    }
  }

  @Test
  void randomOffsetsAndLengthsIntoHeapBuffers() throws IOException {
    Random r = new Random(2);
    for (int i = 0; i < 100; i++) {
      Range range = randomRange(r);
      // A slice of a larger array: the buffer's array offset is not 0.
      ByteBuffer buf =
          ByteBuffer.allocate(range.length + 16).position(7).slice().limit(range.length);
      shared.readFully(range.offset, buf);
      assertRead(range, buf, "read " + i);
    }
  }

  @Test
  void edgeLengthsAndOffsets() throws IOException {
    long[][] cases = {
      {0, 0},
      {0, 1},
      {1, 1},
      {PAGE - 1, 2},
      {PAGE - 1, PAGE + 2},
      {PAGE, PAGE},
      {3 * PAGE + 5, 1},
      {FILE_BYTES - 1, 1},
      {FILE_BYTES - PAGE, PAGE},
      {FILE_BYTES - 12_345, 12_345},
      {FILE_BYTES, 0},
      {0, FILE_BYTES},
      {1, FILE_BYTES - 1},
    };
    for (long[] c : cases) {
      Range range = new Range(c[0], (int) c[1]);
      ByteBuffer buf = ByteBuffer.allocateDirect(range.length);
      shared.readFully(range.offset, buf);
      assertRead(range, buf, "offset=" + c[0] + " length=" + c[1]);
    }
  }

  @Test
  void readsPastTheEndFailNamingFileAndOffset() {
    long[][] cases = {
      {FILE_BYTES, 1}, {FILE_BYTES - 10, 11}, {FILE_BYTES - 100, 1 << 20}, {1L << 40, 8}
    };
    for (long[] c : cases) {
      EOFException e =
          assertThrows(
              EOFException.class,
              () -> shared.readFully(c[0], ByteBuffer.allocateDirect((int) c[1])),
              "offset=" + c[0] + " length=" + c[1]);
      assertTrue(e.getMessage().contains("file=" + file), e.getMessage());
      assertTrue(e.getMessage().contains("offset=" + c[0]), e.getMessage());
      assertTrue(e.getMessage().contains("file ends at " + FILE_BYTES), e.getMessage());
    }
  }

  @Test
  void badArgumentsAreRefused() {
    IllegalArgumentException negative =
        assertThrows(
            IllegalArgumentException.class, () -> shared.readFully(-1, ByteBuffer.allocate(1)));
    assertTrue(negative.getMessage().contains("offset=-1"), negative.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> shared.readFully(0, ByteBuffer.allocateDirect(8).asReadOnlyBuffer()));
  }

  @Test
  void eightThreadsReadOneFileConcurrently() throws Exception {
    try (ExecutorService pool = Executors.newFixedThreadPool(8)) {
      List<Future<?>> jobs = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        long seed = 100 + t;
        jobs.add(
            pool.submit(
                () -> {
                  Random r = new Random(seed);
                  for (int i = 0; i < 60; i++) {
                    Range range = randomRange(r);
                    ByteBuffer buf =
                        r.nextInt(4) == 0
                            ? ByteBuffer.allocate(range.length)
                            : directBuffer(r, range.length);
                    shared.readFully(range.offset, buf);
                    assertRead(range, buf, "thread seed " + seed + " read " + i);
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
  void twoHundredFiftySixAsyncReadsInFlightFromOneThread() {
    Random r = new Random(3);
    int n = 256;
    List<Range> ranges = new ArrayList<>();
    List<ByteBuffer> bufs = new ArrayList<>();
    List<CompletableFuture<Void>> futures = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int length = 1 + r.nextInt(64 << 10);
      Range range = new Range(r.nextLong(FILE_BYTES - length + 1), length);
      ByteBuffer buf = i % 8 == 7 ? ByteBuffer.allocate(length) : directBuffer(r, length);
      ranges.add(range);
      bufs.add(buf);
      futures.add(backend.readAsync(shared, range.offset, buf));
    }
    // Failures travel through their own futures and leave the others alone.
    CompletableFuture<Void> pastEnd =
        backend.readAsync(shared, FILE_BYTES - 1, ByteBuffer.allocateDirect(2));
    CompletableFuture.allOf(futures.toArray(CompletableFuture[]::new)).join();
    for (int i = 0; i < n; i++) {
      assertRead(ranges.get(i), bufs.get(i), "async read " + i);
    }
    CompletionException e = assertThrows(CompletionException.class, pastEnd::join);
    assertInstanceOf(EOFException.class, e.getCause());
    assertTrue(e.getCause().getMessage().contains("offset=" + (FILE_BYTES - 1)));
  }

  @Test
  void asyncBadArgumentsFailTheFutureInsteadOfThrowing() {
    CompletableFuture<Void> f = backend.readAsync(shared, -5, ByteBuffer.allocateDirect(8));
    CompletionException e = assertThrows(CompletionException.class, f::join);
    assertInstanceOf(IllegalArgumentException.class, e.getCause());
  }

  @Test
  void closedFilesFailClearly() throws IOException {
    ReadFile f = backend.open(file);
    ByteBuffer ok = ByteBuffer.allocateDirect(100);
    f.readFully(10, ok);
    f.close();
    f.close(); // idempotent
    for (int length : new int[] {0, 100}) {
      IOException e =
          assertThrows(IOException.class, () -> f.readFully(10, ByteBuffer.allocateDirect(length)));
      assertTrue(e.getMessage().contains("file=" + file), e.getMessage());
      assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }
    CompletionException async =
        assertThrows(
            CompletionException.class,
            () -> backend.readAsync(f, 10, ByteBuffer.allocateDirect(100)).join());
    assertInstanceOf(IOException.class, async.getCause());
    assertTrue(async.getCause().getMessage().contains("closed"), async.getCause().getMessage());
  }

  @Test
  void aFileTruncatedAfterOpenFailsPastItsNewEnd() throws IOException {
    Path p = Files.write(dir.resolve("truncated.bin"), data);
    try (ReadFile f = backend.open(p)) {
      int half = FILE_BYTES / 2;
      try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "rw")) {
        raf.setLength(half);
      }
      assertEquals(FILE_BYTES, f.lengthBytes(), "length is as opened");
      ByteBuffer before = ByteBuffer.allocateDirect(PAGE * 3 + 1);
      f.readFully(half - before.capacity(), before);
      assertRead(new Range(half - before.capacity(), before.capacity()), before, "before the cut");
      EOFException e =
          assertThrows(
              EOFException.class, () -> f.readFully(half - 10, ByteBuffer.allocateDirect(PAGE)));
      assertTrue(e.getMessage().contains("file=" + p), e.getMessage());
      assertTrue(e.getMessage().contains("offset=" + (half - 10)), e.getMessage());
      assertTrue(e.getMessage().contains("file ends at " + half), e.getMessage());
    }
  }

  @Test
  void aMissingFileFailsToOpen() {
    Path missing = dir.resolve("missing.bin");
    NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> backend.open(missing));
    assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
  }

  record Range(long offset, int length) {}

  /**
   * Mostly small reads, some crossing pages, some aligned, a few of several MiB, some at the end.
   */
  static Range randomRange(Random r) {
    int length =
        switch (r.nextInt(10)) {
          case 0 -> r.nextInt(2); // 0 or 1 byte
          case 1, 2, 3 -> 1 + r.nextInt(PAGE * 2);
          case 4, 5 -> PAGE * (1 + r.nextInt(64)); // aligned lengths
          case 6, 7 -> 1 + r.nextInt(256 << 10);
          default -> 1 + r.nextInt(4 << 20);
        };
    long offset =
        switch (r.nextInt(6)) {
          case 0 -> (long) PAGE * r.nextInt((FILE_BYTES - length) / PAGE + 1); // aligned
          case 1 ->
              Math.max(0, (long) PAGE * (1 + r.nextInt(FILE_BYTES / PAGE - 1)) - 1 - r.nextInt(16));
          case 2 -> FILE_BYTES - length; // ends at end of file
          default -> r.nextLong(FILE_BYTES - length + 1L);
        };
    offset = Math.min(offset, FILE_BYTES - length);
    return new Range(offset, length);
  }

  /** A direct buffer: page-aligned half the time, at an odd address otherwise. */
  ByteBuffer directBuffer(Random r, int length) {
    if (r.nextBoolean()) {
      return Arena.ofAuto().allocate(Math.max(length, 1), PAGE).asByteBuffer().limit(length);
    }
    return ByteBuffer.allocateDirect(length + 8).position(1 + r.nextInt(7)).slice().limit(length);
  }

  /** {@code buf} was filled (position at limit) with exactly the file's bytes of {@code range}. */
  void assertRead(Range range, ByteBuffer buf, String what) {
    assertEquals(buf.limit(), buf.position(), what + ": position at limit");
    assertEquals(range.length, buf.limit(), what);
    ByteBuffer got = buf.duplicate().flip();
    int mismatch = ByteBuffer.wrap(data, (int) range.offset, range.length).mismatch(got);
    if (mismatch != -1) {
      fail(
          what
              + " offset="
              + range.offset
              + " length="
              + range.length
              + ": first wrong byte at +"
              + mismatch);
    }
  }
}
