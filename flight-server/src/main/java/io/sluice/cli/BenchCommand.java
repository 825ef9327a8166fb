package io.sluice.cli;

import io.sluice.bench.ReadEngineBench;
import io.sluice.config.ByteSize;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.read.ReadBackends;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code sluice bench}: measurements; {@code read} measures the read engine alone. */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    description = {
      "Benchmarks. 'sluice bench [--quick]' (run by the launcher in .venv) is the suite: Sluice"
          + " beside the storage and wire ceilings and PyTorch's DataLoader on the same files,"
          + " warm and cold, with a simulated trainer's stall; a table, a JSON file and an HTML"
          + " picture. 'sluice bench micro [REGEX]' runs the JMH benchmarks of the parts.",
      "'sluice bench read' measures the read engine on its own.",
      "'sluice bench delivery [--quick]' (run by the launcher in .venv) compares Sluice's cpu and"
          + " shm delivery with pyarrow's own Flight server and PyTorch's DataLoader on the same"
          + " files.",
      "'sluice bench tenants' (also in .venv) measures one job's rate alone and beside a client"
          + " that stopped reading."
    },
    subcommands = {BenchCommand.Read.class})
final class BenchCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UsageException(
        "bench needs a benchmark: 'sluice bench read', 'delivery' or 'tenants' (see --help)");
  }

  @Command(
      name = "read",
      mixinStandardHelpOptions = true,
      description = {
        "On a token dataset (made when missing): the sequential read rate of every shard, then a"
            + " shuffled epoch through the prefetcher and sample cache per backend and shuffle,"
            + " and the same epoch with each rank sleeping per step so it consumes --pace of the"
            + " rate the free epoch reached, reporting stall time. The page cache is dropped"
            + " before every run when the process may (root), else every run is warm."
      })
  static final class Read implements Callable<Integer> {
    @Option(
        names = "--dir",
        defaultValue = "/tmp/sluice-bench-tokens",
        description = "Dataset folder (default: ${DEFAULT-VALUE}).")
    Path dir;

    @Option(
        names = "--size",
        defaultValue = "2g",
        paramLabel = "SIZE",
        description = "Dataset bytes (default: ${DEFAULT-VALUE}).")
    String size;

    @Option(
        names = "--sample-bytes",
        defaultValue = "4096",
        description = "Bytes per sample, uint16 tokens (default: ${DEFAULT-VALUE}).")
    int sampleBytes;

    @Option(
        names = "--shard-size",
        defaultValue = "64m",
        paramLabel = "SIZE",
        description = "Bytes per shard (default: ${DEFAULT-VALUE}).")
    String shardSize;

    @Option(
        names = "--backends",
        defaultValue = "posix,io_uring",
        split = ",",
        description = "Any of auto, posix, io_uring, io_uring+direct (default: ${DEFAULT-VALUE}).")
    List<String> backends;

    @Option(
        names = "--shuffles",
        defaultValue = "global,block",
        split = ",",
        description = "Shuffle modes; block uses 4 shards per block (default: ${DEFAULT-VALUE}).")
    List<String> shuffles;

    @Option(
        names = "--ranks",
        defaultValue = "2",
        description = "Local ranks (default: ${DEFAULT-VALUE}).")
    int ranks;

    @Option(
        names = "--batch-size",
        defaultValue = "64",
        description = "Samples per rank per step (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(
        names = "--cache",
        defaultValue = "1g",
        paramLabel = "SIZE",
        description = "Sample cache budget (default: ${DEFAULT-VALUE}).")
    String cache;

    @Option(
        names = "--pace",
        defaultValue = "0.8",
        description = "Paced pass: fraction of the free epoch's rate (default: ${DEFAULT-VALUE}).")
    double pace;

    @Option(
        names = "--repeats",
        defaultValue = "1",
        description = "Rounds of every run (default: ${DEFAULT-VALUE}).")
    int repeats;

    @Option(
        names = "--coalesce-gap",
        defaultValue = "16k",
        paramLabel = "SIZE",
        description = "Gap read through between two ranges (default: ${DEFAULT-VALUE}).")
    String gap;

    @Override
    public Integer call() throws Exception {
      if (sampleBytes < 2 || sampleBytes % 2 != 0) {
        throw new UsageException("--sample-bytes=" + sampleBytes + " must be even and >= 2");
      }
      if (pace <= 0 || pace > 1) {
        throw new UsageException("--pace=" + pace + " must be in (0, 1]");
      }
      for (String b : backends) {
        try {
          ReadBackends.checkChoice(b);
        } catch (IllegalArgumentException e) {
          throw new UsageException("--backends entry: " + e.getMessage());
        }
      }
      PrefetchOptions prefetch =
          PrefetchOptions.defaults().withCoalesceGapBytes(ByteSize.parse("--coalesce-gap", gap));
      new ReadEngineBench(
              new ReadEngineBench.Options(
                  dir,
                  ByteSize.parse("--size", size),
                  sampleBytes,
                  ByteSize.parse("--shard-size", shardSize),
                  backends,
                  shuffles,
                  ranks,
                  batchSize,
                  ByteSize.parse("--cache", cache),
                  pace,
                  repeats,
                  prefetch),
              System.out)
          .run();
      return 0;
    }
  }
}
