package io.sluice.hw;

import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sluice.nativeio.CuFile;
import io.sluice.nativeio.Cuda;
import io.sluice.nativeio.CudaDriver;
import io.sluice.nativeio.Gds;
import io.sluice.nativeio.NativeFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bytes from a file into GPU memory, the three ways Sluice has: a plain pinned copy (the ceiling of
 * the host side), the bounce path (a read into pinned host memory, then an async copy, double
 * buffered) and cuFile (true GDS where nvidia-fs is loaded, compatibility mode elsewhere). Every
 * run checks every byte that landed on the device, and prints its rate for docs/hardware.md.
 */
@Tag("hw")
@Tag("gpu")
class GpuReadHwTest {
  private static final long FILE_BYTES = 256L << 20;
  private static final int CHUNK_BYTES = 16 << 20;

  @TempDir Path dir;

  /** The long at byte {@code offset} of the test file. */
  private static long word(long offset) {
    long h = (offset / 8) * 0x9E3779B97F4A7C15L;
    return h ^ (h >>> 31);
  }

  private Path writeFile() throws IOException {
    Path f = dir.resolve("gpu-read.bin");
    try (FileChannel ch =
        FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocateDirect(CHUNK_BYTES).order(java.nio.ByteOrder.nativeOrder());
      for (long at = 0; at < FILE_BYTES; at += CHUNK_BYTES) {
        b.clear();
        for (int i = 0; i < CHUNK_BYTES; i += 8) {
          b.putLong(i, word(at + i));
        }
        ch.write(b, at);
      }
      ch.force(true);
    }
    dropPageCache();
    return f;
  }

  /** Cold reads where the run may drop the page cache (root); warm ones otherwise (said so). */
  private static String dropPageCache() {
    try {
      Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3");
      return "cold";
    } catch (IOException | SecurityException e) {
      return "warm";
    }
  }

  /** Copies the device buffer back and checks every word. */
  private static void verify(CudaDriver d, long device, MemorySegment host, String path)
      throws IOException {
    for (long at = 0; at < FILE_BYTES; at += CHUNK_BYTES) {
      d.copyToHost(host, device + at, CHUNK_BYTES);
      for (long i = 0; i < CHUNK_BYTES; i += 8) {
        long got = host.get(JAVA_LONG_UNALIGNED, i);
        if (got != word(at + i)) {
          assertEquals(word(at + i), got, path + ": device byte " + (at + i));
        }
      }
    }
  }

  @Test
  void fileBytesReachDeviceMemoryRightByEveryPath() throws Exception {
    Hardware.need(
        Cuda.isAvailable(),
        "CUDA GPU",
        Cuda.isAvailable() ? "" : Cuda.unavailabilityCause().getMessage());
    Path file = writeFile();
    try (CudaDriver d = CudaDriver.open(0)) {
      long device = d.allocDevice(FILE_BYTES);
      MemorySegment[] pinned = {d.allocHost(CHUNK_BYTES), d.allocHost(CHUNK_BYTES)};
      MemorySegment stream = d.createStream();
      try {
        // 1. The ceiling: pinned host memory to the device, nothing read.
        long t0 = System.nanoTime();
        for (long at = 0; at < FILE_BYTES; at += CHUNK_BYTES) {
          d.copyToDevice(device + at, pinned[0], CHUNK_BYTES);
        }
        double pinnedRate = FILE_BYTES / ((System.nanoTime() - t0) / 1e9);

        // 2. Bounce: read a chunk into one pinned buffer while the other one's copy runs.
        String temperature = dropPageCache();
        t0 = System.nanoTime();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
          int k = 0;
          for (long at = 0; at < FILE_BYTES; at += CHUNK_BYTES, k ^= 1) {
            if (at >= 2L * CHUNK_BYTES) {
              d.synchronize(stream); // the buffer about to be refilled is copied out by now
            }
            ByteBuffer b = pinned[k].asByteBuffer();
            while (b.hasRemaining()) {
              if (ch.read(b, at + b.position()) < 0) {
                throw new IOException(file + " ended at " + (at + b.position()));
              }
            }
            d.copyToDeviceAsync(device + at, pinned[k], CHUNK_BYTES, stream);
          }
          d.synchronize(stream);
        }
        double bounceRate = FILE_BYTES / ((System.nanoTime() - t0) / 1e9);
        verify(d, device, pinned[0], "bounce");

        // 3. cuFile, where there is one.
        String gds =
            Gds.isAvailable()
                ? ""
                : "cuFile unavailable: " + Gds.unavailabilityCause().getMessage();
        if (Gds.isAvailable()) {
          // Zero the device buffer first: a cuFile path that wrote nothing must fail the check.
          pinned[0].fill((byte) 0);
          for (long at = 0; at < FILE_BYTES; at += CHUNK_BYTES) {
            d.copyToDevice(device + at, pinned[0], CHUNK_BYTES);
          }
          d.makeCurrent();
          try (CuFile cufile = CuFile.open();
              NativeFile f = NativeFile.open(file, true)) {
            cufile.registerBuffer(device, FILE_BYTES);
            try (CuFile.Handle h = cufile.register(f)) {
              dropPageCache();
              t0 = System.nanoTime();
              for (long at = 0; at < FILE_BYTES; at += CHUNK_BYTES) {
                long n = h.read(device, CHUNK_BYTES, at, at);
                assertEquals(CHUNK_BYTES, n, "cuFileRead at " + at);
              }
              double rate = FILE_BYTES / ((System.nanoTime() - t0) / 1e9);
              gds = String.format("cuFile (%s) %.2f GB/s", Gds.mode(), rate / 1e9);
            } finally {
              cufile.deregisterBuffer(device);
            }
            verify(d, device, pinned[0], "cuFile");
          }
        }
        System.out.printf(
            "[hw-tests] gpu-read %s: %d MiB in %d MiB reads (%s page cache): pinned memcpy %.2f"
                + " GB/s, bounce %.2f GB/s, %s%n",
            Cuda.devices().getFirst().name(),
            FILE_BYTES >> 20,
            CHUNK_BYTES >> 20,
            temperature,
            pinnedRate / 1e9,
            bounceRate / 1e9,
            gds);
      } finally {
        d.destroyStream(stream);
        d.freeHost(pinned[0]);
        d.freeHost(pinned[1]);
        d.freeDevice(device);
      }
    }
  }
}
