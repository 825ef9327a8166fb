package io.sluice.cli;

import io.sluice.config.ConfigException;
import io.sluice.config.ConfigLoader;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.ShardFormat;
import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3Settings;
import io.sluice.s3.S3Store;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
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
          "Index a dataset folder or s3://bucket/prefix: write PATH/sluice-manifest.json (and"
              + " per-shard index files where the format needs them) and print a summary. For a"
              + " bucket, the store, region and credentials come from the AWS environment"
              + " (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE...) and the s3"
              + " section of --config; a read-only bucket gets its index files in"
              + " s3.metadata_dir.")
  static final class Index implements Callable<Integer> {
    @Parameters(paramLabel = "PATH", description = "The dataset folder, or s3://bucket/prefix.")
    String path;

    @Option(
        names = "--config",
        paramLabel = "FILE",
        description = "A daemon config file whose s3 section to use (default: $SLUICE_CONFIG).")
    Path config;

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
      try (Location at = Location.of(path, config)) {
        r = f.index(at.dir(), options, progress);
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

  /** A dataset folder, local or in a bucket (then with the store client it needs). */
  private record Location(Path dir, S3FileSystem fs) implements AutoCloseable {
    static Location of(String path, Path configFile) {
      if (!S3FileSystem.isS3Uri(path)) {
        return new Location(Path.of(path), null);
      }
      Map<String, String> env = System.getenv();
      Path file = configFile;
      if (file == null && env.get(ConfigLoader.CONFIG_ENV) != null) {
        file = Path.of(env.get(ConfigLoader.CONFIG_ENV));
      }
      S3Settings settings;
      try {
        settings = ConfigLoader.load(file, env, Map.of(), List.of()).s3().resolve(env);
      } catch (ConfigException e) {
        throw new UsageException(e.getMessage());
      }
      S3FileSystem fs = S3FileSystem.open(S3Store.open(settings));
      try {
        return new Location(fs.path(path), fs);
      } catch (IllegalArgumentException e) {
        fs.close();
        throw new UsageException(e.getMessage());
      }
    }

    @Override
    public void close() {
      if (fs != null) {
        fs.close();
      }
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
