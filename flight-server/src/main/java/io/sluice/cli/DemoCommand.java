package io.sluice.cli;

import io.sluice.demo.DemoRunner;
import io.sluice.server.FlightTransport;
import io.sluice.tools.EpochReader;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code sluice demo}: the main job end to end on an embedded default dataset. */
@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    description = {
      "Make a small token dataset, start the daemon in-process on a free loopback port, stream"
          + " one shuffled epoch to every rank through Arrow Flight clients, check every token and"
          + " exactly-once delivery, and print a report."
    })
final class DemoCommand implements Callable<Integer> {
  @Option(
      names = "--dir",
      description =
          "Dataset folder (default: $XDG_CACHE_HOME/sluice/demo-tokens or ~/.cache/sluice/demo-tokens).")
  Path dir;

  @Option(
      names = "--shards",
      defaultValue = "8",
      description = "Shards (default: ${DEFAULT-VALUE}).")
  int shards;

  @Option(
      names = "--samples-per-shard",
      defaultValue = "8192",
      description = "Samples per shard (default: ${DEFAULT-VALUE}).")
  int samplesPerShard;

  @Option(
      names = "--seq-len",
      defaultValue = "512",
      description = "Tokens per sample (default: ${DEFAULT-VALUE}).")
  int seqLen;

  @Option(
      names = "--ranks",
      defaultValue = "2",
      description = "Trainer ranks, one Flight stream each (default: ${DEFAULT-VALUE}).")
  int ranks;

  @Option(
      names = "--batch-size",
      defaultValue = "64",
      description = "Samples per rank per step (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Option(
      names = "--seed",
      defaultValue = "42",
      description = "Shuffle seed (default: ${DEFAULT-VALUE}).")
  long seed;

  @Mixin DataPlaneOptions dataPlane;

  @Override
  public Integer call() throws Exception {
    for (var e :
        new Object[][] {
          {"--shards", shards},
          {"--samples-per-shard", samplesPerShard},
          {"--seq-len", seqLen},
          {"--ranks", ranks},
          {"--batch-size", batchSize}
        }) {
      if ((int) e[1] < 1) {
        throw new UsageException(e[0] + "=" + e[1] + " must be >= 1");
      }
    }
    if (dir == null) {
      String cache = System.getenv("XDG_CACHE_HOME");
      Path base =
          cache != null && !cache.isBlank()
              ? Path.of(cache)
              : Path.of(System.getProperty("user.home"), ".cache");
      dir = base.resolve("sluice").resolve("demo-tokens");
    }
    FlightTransport transport = dataPlane.transport();
    String backend = dataPlane.backend();
    System.out.println("sluice demo: one shuffled epoch through the daemon over Arrow Flight");
    EpochReader.Result r =
        DemoRunner.run(
            new DemoRunner.Options(
                dir, shards, samplesPerShard, seqLen, ranks, batchSize, seed, transport, backend),
            System.out);
    DemoRunner.print(r, System.out);
    return r.ok() ? 0 : 1;
  }
}
