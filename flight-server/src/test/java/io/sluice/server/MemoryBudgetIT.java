package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.demo.DemoDataset;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon, as {@code sluice serve} runs it, holds its peak resident memory within the memory
 * budget plus 300 MB while four ranks stream a whole epoch of a dataset five times the budget.
 */
class MemoryBudgetIT {
  private static final long BUDGET = 256L << 20;
  private static final long SLACK = 300L << 20;

  @TempDir Path dir;

  @Test
  @Timeout(300) // a hang guard, not a performance bound
  void peakRssStaysWithinTheBudgetOnADatasetFiveTimesLarger() throws Exception {
    // 21 shards x 16000 samples x 4 KiB = 1.38 GB, over 5x the budget.
    DemoDataset.ensure(dir, 21, 16_000, 2048);
    long datasetBytes = 0;
    try (var files = Files.list(dir)) {
      for (Path p : files.toList()) {
        datasetBytes += Files.size(p);
      }
    }
    assertTrue(datasetBytes >= 5 * BUDGET, "dataset " + datasetBytes + " bytes");
    // The heap the launcher gives serve (192 MiB + budget/16): the heap is outside the budget.
    try (DaemonProcess daemon =
        DaemonProcess.start(
            (192L << 20) + BUDGET / 16,
            Map.of(),
            "--port",
            "0",
            "--memory-budget",
            String.valueOf(BUDGET),
            "--dataset",
            "big=" + dir)) {
      int port = daemon.port();
      int world = 4;
      long samples = 0;
      try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
          SluiceClient client = SluiceClient.connect("grpc://127.0.0.1:" + port, alloc);
          ExecutorService ranks = Executors.newFixedThreadPool(world)) {
        List<Future<Long>> rows = new ArrayList<>();
        for (int r = 0; r < world; r++) {
          int rank = r;
          rows.add(
              ranks.submit(
                  () -> {
                    long n = 0;
                    try (RankStream s =
                        client.open(StreamRequest.of("big", rank, world, 64).withSeed(3))) {
                      while (s.next()) {
                        n += s.root().getRowCount();
                      }
                    }
                    return n;
                  }));
        }
        for (Future<Long> f : rows) {
          samples += f.get();
        }
      }
      long n = 21L * 16_000;
      long global = 64L * world;
      assertEquals((n + global - 1) / global * global, samples, "the whole epoch, padding too");
      long hwm = peakRssBytes(daemon.pid());
      System.out.printf(
          "MemoryBudgetIT: budget %d MiB, dataset %d MiB, daemon peak RSS %d MiB%n",
          BUDGET >> 20, datasetBytes >> 20, hwm >> 20);
      assertTrue(
          hwm <= BUDGET + SLACK,
          "peak RSS " + (hwm >> 20) + " MiB > budget " + (BUDGET >> 20) + " MiB + 300 MiB");
    }
  }

  private static long peakRssBytes(long pid) throws Exception {
    for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    throw new AssertionError("no VmHWM in /proc/" + pid + "/status");
  }
}
