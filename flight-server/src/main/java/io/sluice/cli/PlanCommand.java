package io.sluice.cli;

import io.sluice.format.Manifest;
import io.sluice.planner.DatasetLayout;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code sluice plan}: prints a rank's batches for one epoch, one line of sample ids each. */
@Command(
    name = "plan",
    mixinStandardHelpOptions = true,
    description = {
      "Print the batches one rank gets in one epoch: a line per batch, its global sample ids"
          + " separated by spaces. Pure computation: no data is read.",
    })
final class PlanCommand implements Callable<Integer> {
  static final class Source {
    @Option(names = "--samples", required = true, description = "Plan over N samples in one shard.")
    Long samples;

    @Option(
        names = "--dataset",
        required = true,
        description = "Plan over an indexed dataset folder (its manifest's shards).")
    Path dataset;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  Source source;

  @Option(
      names = "--seed",
      defaultValue = "0",
      description = "Shuffle seed (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--epoch", defaultValue = "0", description = "Epoch (default: ${DEFAULT-VALUE}).")
  long epoch;

  @Option(names = "--world-size", required = true, description = "Ranks in the job.")
  int worldSize;

  @Option(names = "--rank", required = true, description = "The rank whose batches to print.")
  int rank;

  @Option(names = "--batch-size", required = true, description = "Samples per rank per step.")
  int batchSize;

  @Option(
      names = "--shuffle",
      defaultValue = "global",
      description = "global, block, shard or none (default: ${DEFAULT-VALUE}).")
  String shuffle;

  @Option(
      names = "--block-shards",
      defaultValue = "4",
      description = "Shards per block for --shuffle block (default: ${DEFAULT-VALUE}).")
  int blockShards;

  @Option(
      names = "--start-cursor",
      defaultValue = "0",
      description = "Resume at this cursor (a multiple of world size x batch size).")
  long startCursor;

  @Option(
      names = "--drop-last",
      description = "Drop the tail instead of padding the last global batch by wrapping.")
  boolean dropLast;

  @Option(
      names = "--steps",
      description = "Print at most this many batches (default: the rest of the epoch).")
  Long steps;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    if (worldSize < 1) {
      throw new UsageException("--world-size=" + worldSize + " must be >= 1");
    }
    if (rank < 0 || rank >= worldSize) {
      throw new UsageException(
          "--rank=" + rank + " must be in [0, --world-size=" + worldSize + ")");
    }
    if (steps != null && steps < 0) {
      throw new UsageException("--steps=" + steps + " must be >= 0");
    }
    EpochPlan plan;
    long first;
    try {
      DatasetLayout layout =
          source.samples != null
              ? DatasetLayout.ofCount(source.samples)
              : Manifest.read(source.dataset).layout();
      GlobalSequence seq =
          GlobalSequence.of(layout, seed, epoch, ShuffleMode.parse(shuffle, blockShards));
      plan = EpochPlan.of(seq, worldSize, batchSize, dropLast);
      first = plan.stepAtCursor(startCursor);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    long end = plan.stepCount();
    if (steps != null) {
      end = Math.min(end, first + steps);
    }
    PrintWriter out = spec.commandLine().getOut();
    long[] ids = new long[batchSize];
    StringBuilder line = new StringBuilder();
    for (long step = first; step < end; step++) {
      plan.fill(rank, step, ids, null);
      line.setLength(0);
      for (int i = 0; i < ids.length; i++) {
        if (i > 0) {
          line.append(' ');
        }
        line.append(ids[i]);
      }
      out.println(line);
    }
    out.flush();
    return out.checkError() ? 1 : 0;
  }
}
