package io.sluice.read;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** The conformance suite with O_DIRECT, plus the alignment paths and the buffered fallback. */
class IoUringDirectReadBackendTest extends ReadBackendConformanceTest {
  private Path ownDir;

  @Override
  protected ReadBackend newBackend() {
    return new IoUringReadBackend(true, 64);
  }

  @Override
  protected void assumeBackendAvailable() {
    IoUringReadBackendTest.assumeIoUring();
  }

  /** O_DIRECT needs a real file system: where /tmp is tmpfs, use a folder under target/. */
  @Override
  protected Path dataDir(Path tempDir) throws IOException {
    if (!Files.getFileStore(tempDir).type().equals("tmpfs")) {
      return tempDir;
    }
    Path target = Path.of("target");
    Files.createDirectories(target);
    ownDir = Files.createTempDirectory(target, "direct-io-");
    return ownDir;
  }

  @AfterAll
  void removeOwnDir() throws IOException {
    if (ownDir != null) {
      try (Stream<Path> s = Files.walk(ownDir)) {
        for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }

  @Test
  void directIoIsInEffect() throws IOException {
    IoUringReadBackend.UringFile f = (IoUringReadBackend.UringFile) shared;
    String fs = Files.getFileStore(dir).type();
    assumeTrue(f.directIo(), () -> "file system " + fs + " refused O_DIRECT");
    assertTrue(
        f.offsetAlign() >= 512 && Integer.bitCount(f.offsetAlign()) == 1, "" + f.offsetAlign());
    assertTrue(f.memAlign() >= 1 && Integer.bitCount(f.memAlign()) == 1, "" + f.memAlign());
    System.out.println(
        "O_DIRECT on "
            + fs
            + ": offset/length alignment "
            + f.offsetAlign()
            + " B, buffer alignment "
            + f.memAlign()
            + " B");
  }

  @Test
  void matchesPosixByteForByte() throws IOException {
    Random r = new Random(9);
    try (PosixReadBackend posix = new PosixReadBackend();
        ReadFile p = posix.open(file)) {
      for (int i = 0; i < 200; i++) {
        Range range = randomRange(r);
        ByteBuffer direct = directBuffer(r, range.length());
        ByteBuffer buffered = ByteBuffer.allocateDirect(range.length());
        shared.readFully(range.offset(), direct);
        p.readFully(range.offset(), buffered);
        assertEquals(
            buffered.flip(),
            direct.flip(),
            "offset=" + range.offset() + " length=" + range.length());
      }
    }
  }

  @Test
  void alignedReadsGoInPlaceAndUnalignedOnesThroughABounce() throws IOException {
    IoUringReadBackend.UringFile f = (IoUringReadBackend.UringFile) shared;
    int a = f.offsetAlign();
    try (Arena arena = Arena.ofConfined()) {
      // In place: offset, length and address aligned.
      ByteBuffer aligned = arena.allocate(16L * a, Math.max(a, f.memAlign())).asByteBuffer();
      shared.readFully(3L * a, aligned);
      assertRead(new Range(3L * a, 16 * a), aligned, "aligned");
      // Each of the three misalignments on its own.
      ByteBuffer oddLength =
          arena.allocate(16L * a, Math.max(a, f.memAlign())).asByteBuffer().limit(16 * a - 1);
      shared.readFully(3L * a, oddLength);
      assertRead(new Range(3L * a, 16 * a - 1), oddLength, "odd length");
      ByteBuffer oddOffset = arena.allocate(16L * a, Math.max(a, f.memAlign())).asByteBuffer();
      shared.readFully(3L * a + 1, oddOffset);
      assertRead(new Range(3L * a + 1, 16 * a), oddOffset, "odd offset");
      ByteBuffer oddAddress =
          arena
              .allocate(16L * a + 64, Math.max(a, f.memAlign()))
              .asByteBuffer()
              .position(1)
              .slice()
              .limit(16 * a);
      shared.readFully(3L * a, oddAddress);
      assertRead(new Range(3L * a, 16 * a), oddAddress, "odd address");
    }
  }

  @Test
  void fileSystemsWithoutDirectIoAreReadBufferedAndSaidSoOnce() throws IOException {
    // procfs refuses O_DIRECT at open (EINVAL), as tmpfs did before Linux 6.6.
    Path proc = Path.of("/proc/version");
    assumeTrue(Files.isReadable(proc), "no /proc/version");
    List<LogRecord> records = new ArrayList<>();
    Logger log = Logger.getLogger(IoUringReadBackend.class.getName());
    Handler h =
        new Handler() {
          @Override
          public void publish(LogRecord r) {
            records.add(r);
          }

          @Override
          public void flush() {}

          @Override
          public void close() {}
        };
    log.addHandler(h);
    try (IoUringReadBackend fresh = new IoUringReadBackend(true, 4)) {
      for (int i = 0; i < 3; i++) {
        try (ReadFile f = fresh.open(proc)) {
          assertFalse(((IoUringReadBackend.UringFile) f).directIo());
          ByteBuffer buf = ByteBuffer.allocateDirect(5);
          f.readFully(0, buf);
          assertEquals("Linux", StandardCharsets.US_ASCII.decode(buf.flip()).toString());
        }
      }
    } finally {
      log.removeHandler(h);
    }
    List<LogRecord> info =
        records.stream()
            .filter(r -> r.getLevel().intValue() >= java.util.logging.Level.INFO.intValue())
            .toList();
    assertEquals(1, info.size(), records.toString());
    assertTrue(info.get(0).getMessage().contains("file=" + proc), info.get(0).getMessage());
    assertTrue(info.get(0).getMessage().contains("O_DIRECT"), info.get(0).getMessage());
  }

  @Test
  void tmpfsFilesReadTheSameEitherWay() throws IOException {
    Path shm = Path.of("/dev/shm");
    assumeTrue(Files.isDirectory(shm) && Files.isWritable(shm), "no writable /dev/shm");
    Path p = Files.createTempFile(shm, "sluice-direct-", ".bin");
    try {
      Files.write(p, java.util.Arrays.copyOf(data, 100_003));
      try (ReadFile f = backend.open(p)) {
        ByteBuffer buf = ByteBuffer.allocateDirect(99_000);
        f.readFully(1_001, buf);
        assertRead(
            new Range(1_001, 99_000),
            buf,
            "tmpfs, directIo=" + ((IoUringReadBackend.UringFile) f).directIo());
      }
    } finally {
      Files.deleteIfExists(p);
    }
  }
}
