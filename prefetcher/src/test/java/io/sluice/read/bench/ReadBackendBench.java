package io.sluice.read.bench;

import io.sluice.read.IoUringReadBackend;
import io.sluice.read.PosixReadBackend;
import io.sluice.read.ReadBackend;
import io.sluice.read.ReadFile;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

/**
 * Cold-cache sequential read of one file in 1 MiB chunks: posix {@code FileChannel} one read at a
 * time, then posix and io_uring (buffered, O_DIRECT) with 32 reads in flight from one thread.
 * Prints GB/s (10^9 bytes/s) per repetition and the median.
 *
 * <p>Page cache dropped before every run ({@code sync; echo 3 > /proc/sys/vm/drop_caches}; needs
 * root, else it says so and measures warm; {@code warm} skips it to measure CPU cost). Run from the
 * repository root:
 *
 * <pre>
 * ./mvnw -B -o -q -pl dataplane-native,prefetcher install -DskipTests -Dspotless.check.skip=true
 * ./mvnw -B -o -q -pl prefetcher dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 * java --enable-native-access=ALL-UNNAMED \
 *   -cp dataplane-native/target/classes:prefetcher/target/classes:prefetcher/target/test-classes:$(cat prefetcher/target/cp.txt) \
 *   io.sluice.read.bench.ReadBackendBench [file=prefetcher/target/bench/read-1g.bin] [sizeMiB=1024] [reps=3] [warm]
 * </pre>
 */
public final class ReadBackendBench {
  static final int CHUNK = 1 << 20;
  static final int IN_FLIGHT = 32;

  private ReadBackendBench() {}

  public static void main(String[] args) throws Exception {
    Path file = Path.of(args.length > 0 ? args[0] : "prefetcher/target/bench/read-1g.bin");
    long sizeBytes = (args.length > 1 ? Long.parseLong(args[1]) : 1024L) << 20;
    int reps = args.length > 2 ? Integer.parseInt(args[2]) : 3;
    boolean warm = args.length > 3 && args[3].equals("warm");
    create(file, sizeBytes);
    System.out.printf(
        "file=%s sizeBytes=%d fs=%s chunk=%d inFlight=%d reps=%d cache=%s%n",
        file,
        sizeBytes,
        Files.getFileStore(file).type(),
        CHUNK,
        IN_FLIGHT,
        reps,
        warm ? "warm" : "cold");

    List<Mode> modes =
        List.of(
            new Mode("posix FileChannel sequential, 1 in flight", null),
            new Mode("posix readAsync (virtual threads), 32 in flight", PosixReadBackend::new),
            new Mode("io_uring buffered, 32 in flight", () -> new IoUringReadBackend(false)),
            new Mode("io_uring O_DIRECT, 32 in flight", () -> new IoUringReadBackend(true)));
    // One untimed pass first: the virtio disk here is cached by the host, so "cold" means cold in
    // this VM's page cache only, the same for every mode.
    long expected = sequential(file);
    // Modes interleaved per repetition, so drifting load from other tenants hits them alike.
    double[][] gbps = new double[modes.size()][reps];
    for (int i = 0; i < reps; i++) {
      for (int m = 0; m < modes.size(); m++) {
        Mode mode = modes.get(m);
        if (!warm) {
          dropCaches();
        }
        long t0 = System.nanoTime();
        long check = mode.factory == null ? sequential(file) : windowed(mode, file);
        long ns = System.nanoTime() - t0;
        if (check != expected) {
          throw new IllegalStateException(
              mode.name + ": read different bytes (check " + check + ")");
        }
        gbps[m][i] = sizeBytes / (double) ns;
      }
    }
    for (int m = 0; m < modes.size(); m++) {
      double[] sorted = gbps[m].clone();
      Arrays.sort(sorted);
      System.out.printf(
          "%-50s median %.2f GB/s  runs %s%n",
          modes.get(m).name, sorted[reps / 2], format(gbps[m]));
    }
  }

  record Mode(String name, java.util.function.Supplier<ReadBackend> factory) {}

  /** A cheap fingerprint (first long of every chunk), to prove every mode read the same bytes. */
  private static long fingerprint(long acc, ByteBuffer chunk) {
    return acc * 31 + chunk.getLong(0);
  }

  private static long sequential(Path file) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
    long acc = 0;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      for (long off = 0; off < size; off += CHUNK) {
        buf.clear().limit((int) Math.min(CHUNK, size - off));
        while (buf.hasRemaining()) {
          if (ch.read(buf, off + buf.position()) < 0) {
            throw new IOException("unexpected end of file at " + (off + buf.position()));
          }
        }
        acc = fingerprint(acc, buf);
      }
    }
    return acc;
  }

  private static long windowed(Mode mode, Path file) throws IOException {
    try (ReadBackend backend = mode.factory.get();
        ReadFile f = backend.open(file);
        Arena arena = Arena.ofShared()) { // posix fills the buffers on other threads
      long size = f.lengthBytes();
      ByteBuffer[] bufs = new ByteBuffer[IN_FLIGHT];
      List<CompletableFuture<Void>> inFlight = new ArrayList<>();
      for (int i = 0; i < IN_FLIGHT; i++) {
        inFlight.add(null);
        bufs[i] = arena.allocate(CHUNK, 4096).asByteBuffer(); // aligned: O_DIRECT reads in place
      }
      long acc = 0;
      long chunks = Math.ceilDiv(size, CHUNK);
      for (long c = 0; c < chunks + IN_FLIGHT; c++) {
        int slot = (int) (c % IN_FLIGHT);
        if (inFlight.get(slot) != null) { // oldest first: chunk c - IN_FLIGHT
          inFlight.get(slot).join();
          acc = fingerprint(acc, bufs[slot]);
          inFlight.set(slot, null);
        }
        if (c < chunks) {
          long off = c * CHUNK;
          bufs[slot].clear().limit((int) Math.min(CHUNK, size - off));
          inFlight.set(slot, backend.readAsync(f, off, bufs[slot]));
        }
      }
      return acc;
    }
  }

  private static void create(Path file, long sizeBytes) throws IOException {
    if (Files.exists(file) && Files.size(file) == sizeBytes) {
      return;
    }
    Files.createDirectories(file.toAbsolutePath().getParent());
    byte[] block = new byte[CHUNK];
    new Random(1).nextBytes(block);
    ByteBuffer buf = ByteBuffer.wrap(block);
    try (FileChannel ch =
        FileChannel.open(
            file,
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      for (long off = 0; off < sizeBytes; off += CHUNK) {
        buf.clear().limit((int) Math.min(CHUNK, sizeBytes - off));
        buf.putLong(0, off); // every chunk differs where the fingerprint looks
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
      }
      ch.force(true);
    }
  }

  private static boolean warnedWarm;

  private static void dropCaches() throws IOException, InterruptedException {
    new ProcessBuilder("sync").inheritIO().start().waitFor();
    try {
      Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3");
    } catch (IOException e) {
      if (!warnedWarm) {
        warnedWarm = true;
        System.out.println("cannot drop caches (" + e + "): measuring with a warm cache");
      }
    }
  }

  private static String format(double[] gbps) {
    List<String> s = new ArrayList<>();
    for (double g : gbps) {
      s.add(String.format("%.2f", g));
    }
    return s.toString();
  }
}
