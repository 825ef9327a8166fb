package io.sluice.cli;

import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.ShardFormat;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code sluice dataset ...}: dataset housekeeping. */
@Command(
    name = "dataset",
    mixinStandardHelpOptions = true,
    description = "Dataset housekeeping.",
    subcommands = {DatasetCommand.Index.class})
final class DatasetCommand implements Runnable {
  @Override
  public void run() {
    throw new UsageException("a subcommand is required: index (see 'sluice dataset --help')");
  }

  /** {@code sluice dataset index PATH}: writes PATH/sluice-manifest.json. */
  @Command(
      name = "index",
      mixinStandardHelpOptions = true,
      description =
          "Index a dataset folder: write PATH/sluice-manifest.json (and per-shard index files"
              + " where the format needs them) and print a summary.")
  static final class Index implements Callable<Integer> {
    @Parameters(paramLabel = "PATH", description = "The dataset folder.")
    Path path;

    @Option(
        names = "--format",
        required = true,
        description = "Shard format: ${COMPLETION-CANDIDATES}.",
        completionCandidates = FormatNames.class)
    String format;

    @Option(
        names = "--dtype",
        description = "Token type for tokens: uint16 or uint32 (default: uint16).")
    String dtype;

    @Option(names = "--seq-len", description = "tokens only: tokens per sample.")
    Integer seqLen;

    @Override
    public Integer call() throws Exception {
      ShardFormat f;
      try {
        f = Formats.byName(format.toLowerCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new UsageException("--" + e.getMessage());
      }
      Map<String, String> options = new LinkedHashMap<>();
      if (dtype != null) {
        options.put("dtype", dtype);
      }
      if (seqLen != null) {
        options.put("seq_len", Integer.toString(seqLen));
      }
      PrintStream err = System.err;
      boolean terminal = System.console() != null && System.console().isTerminal();
      IndexProgress progress =
          terminal
              ? (done, total, bytes) ->
                  err.printf(
                      Locale.ROOT,
                      "\r[%-30s] %d/%d shards, %.1f MiB",
                      "=".repeat((int) (30L * done / total)),
                      done,
                      total,
                      bytes / 1048576.0)
              : IndexProgress.NONE;
      IndexReport r;
      try {
        r = f.index(path, options, progress);
      } catch (IllegalArgumentException e) {
        throw new UsageException(f.name() + ": " + e.getMessage());
      } finally {
        if (terminal) {
          err.println();
        }
      }
      for (String note : r.notes()) {
        System.out.println("note: " + note);
      }
      System.out.printf(
          Locale.ROOT,
          "%s %s: format %s, %d shards, %d samples, %d bytes%n",
          r.reused() ? "manifest unchanged" : "indexed",
          path,
          f.name(),
          r.manifest().shards().size(),
          r.manifest().totalSamples(),
          r.manifest().totalBytes());
      return 0;
    }
  }

  /** The formats {@code --help} lists. */
  static final class FormatNames implements Iterable<String> {
    @Override
    public java.util.Iterator<String> iterator() {
      return Formats.names().iterator();
    }
  }
}
