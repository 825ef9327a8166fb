package io.sluice.cli;

import io.sluice.server.FlightTransport;
import io.sluice.server.SluiceDaemon;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code sluice serve}: runs the daemon until SIGTERM or SIGINT. */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description = "Run the daemon: serve datasets as Arrow Flight streams until SIGTERM/SIGINT.")
final class ServeCommand implements java.util.concurrent.Callable<Integer> {
  @Option(
      names = "--host",
      defaultValue = "127.0.0.1",
      description = "Address to listen on (default: ${DEFAULT-VALUE}).")
  String host;

  @Option(
      names = "--port",
      defaultValue = "8815",
      description = "Port; 0 picks a free one (default: ${DEFAULT-VALUE}).")
  int port;

  @Mixin DataPlaneOptions dataPlane;

  @Option(
      names = "--memory-budget",
      defaultValue = "4g",
      paramLabel = "SIZE",
      description =
          "Off-heap bytes the daemon may hold, with k/m/g suffixes (default:"
              + " ${DEFAULT-VALUE}): half for the sample caches and read-ahead (from 256m up),"
              + " half for batches being built and sent. A batch that does not fit fails its"
              + " stream with RESOURCE_EXHAUSTED.")
  String memoryBudget;

  @Option(
      names = "--shm-dir",
      defaultValue = "/dev/shm",
      paramLabel = "DIR",
      description =
          "Shared-memory mount for shm delivery regions (default: ${DEFAULT-VALUE}). Where the"
              + " daemon cannot make its folder there, shm is off and auto delivers cpu.")
  Path shmDir;

  @Option(
      names = "--dataset",
      required = true,
      paramLabel = "NAME=PATH",
      description = "A dataset to serve: a folder indexed by 'sluice dataset index'. Repeatable.")
  List<String> datasets;

  @Override
  public Integer call() throws Exception {
    if (port < 0 || port > 65535) {
      throw new UsageException("--port=" + port + " must be in [0, 65535]");
    }
    Map<String, Path> paths = parseDatasets(datasets);
    FlightTransport transport = dataPlane.transport();
    String backend = dataPlane.backend();
    long budget = ByteSize.parse("--memory-budget", memoryBudget);
    if (budget < SluiceDaemon.MIN_MEMORY_BUDGET_BYTES) {
      throw new UsageException(
          "--memory-budget="
              + memoryBudget
              + " must be at least "
              + SluiceDaemon.MIN_MEMORY_BUDGET_BYTES
              + " bytes (1m)");
    }
    SluiceDaemon daemon =
        SluiceDaemon.start(
            host,
            port,
            paths,
            transport,
            backend,
            budget,
            io.sluice.prefetch.PrefetchOptions.defaults(),
            shmDir);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  try {
                    daemon.close();
                  } catch (Exception e) {
                    System.err.println("sluice serve: shutdown: " + e.getMessage());
                  } finally {
                    stopped.countDown();
                  }
                },
                "sluice-shutdown"));
    System.out.println(
        "sluice: serving "
            + daemon.uri()
            + " datasets="
            + String.join(",", paths.keySet())
            + " transport="
            + daemon.transport().wireName()
            + " backend="
            + daemon.backendName()
            + " memory_budget="
            + daemon.memoryBudgetBytes()
            + " shm="
            + (daemon.shmUnavailableCause() == null ? "on" : "off"));
    System.out.flush();
    daemon.awaitTermination();
    stopped.await();
    return 0;
  }

  static Map<String, Path> parseDatasets(List<String> specs) {
    Map<String, Path> out = new LinkedHashMap<>();
    for (String spec : specs) {
      int eq = spec.indexOf('=');
      if (eq <= 0 || eq == spec.length() - 1) {
        throw new UsageException("--dataset=" + spec + " must be NAME=PATH");
      }
      String name = spec.substring(0, eq);
      if (out.put(name, Path.of(spec.substring(eq + 1))) != null) {
        throw new UsageException("--dataset name '" + name + "' is given twice");
      }
    }
    return out;
  }
}
