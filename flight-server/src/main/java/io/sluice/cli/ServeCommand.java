package io.sluice.cli;

import io.sluice.config.ConfigLoader;
import io.sluice.config.DaemonConfig;
import io.sluice.config.DaemonConfig.Key;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.server.SluiceDaemon;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code sluice serve}: runs the daemon until SIGTERM or SIGINT. Options come from the defaults, a
 * YAML file ({@code --config}, or {@code SLUICE_CONFIG}), {@code SLUICE_*} environment variables
 * and these flags, each over the one before; see {@link DaemonConfig.Key} and docs/operations.md.
 */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description = {
      "Run the daemon: serve datasets as Arrow Flight streams until SIGTERM/SIGINT.",
      "Settings: defaults < --config FILE (or SLUICE_CONFIG) < SLUICE_* environment < flags.",
      "--print-config shows the result and where each value came from."
    })
final class ServeCommand implements Callable<Integer> {
  @Spec picocli.CommandLine.Model.CommandSpec spec;

  @Option(
      names = "--config",
      paramLabel = "FILE",
      description = "YAML configuration file (default: $SLUICE_CONFIG, else none).")
  Path config;

  @Option(
      names = "--print-config",
      description = "Print the effective configuration (with each value's source) and exit.")
  boolean printConfig;

  @Option(
      names = "--host",
      description =
          "Address to listen on (default 127.0.0.1). Any but loopback needs TLS or --insecure.")
  String host;

  @Option(names = "--port", description = "Flight port; 0 picks a free one (default 8815).")
  String port;

  @Option(
      names = "--metrics-host",
      description = "Address of the Prometheus endpoint (default 127.0.0.1).")
  String metricsHost;

  @Option(
      names = "--metrics-port",
      paramLabel = "PORT|off",
      description =
          "Serve /metrics and /healthz over HTTP on this port; 0 picks one (default off).")
  String metricsPort;

  @Option(
      names = "--memory-budget",
      paramLabel = "SIZE",
      description =
          "Off-heap bytes the daemon may hold, with k/m/g suffixes (default 4g): half for the"
              + " sample caches and read-ahead (from 256m up), half for batches being built and"
              + " sent, which lends what it leaves idle to the caches and takes it back on demand."
              + " A batch that does not fit fails its stream with RESOURCE_EXHAUSTED.")
  String memoryBudget;

  @Option(
      names = "--backend",
      description =
          "Read backend: auto (io_uring where available, else posix), posix, io_uring,"
              + " io_uring+direct (default auto).")
  String backend;

  @Option(
      names = "--transport",
      description = "Netty transport for Flight: auto, nio, io_uring (default auto).")
  String transport;

  @Option(
      names = "--shm-dir",
      paramLabel = "DIR",
      description =
          "Shared-memory mount for shm delivery regions (default /dev/shm). Where the daemon"
              + " cannot make its folder there, shm is off and auto delivers cpu.")
  String shmDir;

  @Option(names = "--tls-cert", paramLabel = "FILE", description = "PEM certificate chain for TLS.")
  String tlsCert;

  @Option(
      names = "--tls-key",
      paramLabel = "FILE",
      description = "PEM (PKCS#8) private key for TLS.")
  String tlsKey;

  @Option(
      names = "--insecure",
      description = "Allow listening beyond loopback without TLS (plaintext on the network).")
  boolean insecure;

  @Option(
      names = "--auth-tokens-file",
      paramLabel = "FILE",
      description =
          "Require 'authorization: Bearer TOKEN' with one of the tokens in FILE (one per line,"
              + " chmod 600).")
  String authTokensFile;

  @Option(
      names = "--s3-endpoint",
      paramLabel = "URL",
      description =
          "S3-compatible endpoint for s3:// datasets (default: AWS_ENDPOINT_URL_S3,"
              + " AWS_ENDPOINT_URL, else AWS).")
  String s3Endpoint;

  @Option(
      names = "--s3-region",
      paramLabel = "REGION",
      description = "Region of s3:// datasets (default: AWS_REGION, the profile's).")
  String s3Region;

  @Option(
      names = "--s3-profile",
      paramLabel = "NAME",
      description = "AWS profile for credentials (default: AWS_PROFILE, else default).")
  String s3Profile;

  @Option(
      names = "--s3-path-style",
      paramLabel = "auto|true|false",
      description = "Path-style S3 addressing (default: on exactly when an endpoint is set).")
  String s3PathStyle;

  @Option(
      names = "--s3-max-in-flight",
      paramLabel = "N",
      description = "Ranged GETs in flight at most (default 64).")
  String s3MaxInFlight;

  @Option(
      names = "--peers",
      paramLabel = "LIST|slurm|dns:NAME",
      description =
          "The job's daemons in node order, HOST:PORT each, a node's NICs joined by '+' (@W weighs"
              + " a path); slurm or dns:SERVICE[:PORT] find them (default: none, a single node).")
  String peers;

  @Option(
      names = "--node-rank",
      paramLabel = "I",
      description = "This node's index in --peers (default: from Slurm or DNS).")
  String nodeRank;

  @Option(
      names = "--peer-transport",
      paramLabel = "auto|ucx|tcp|disni",
      description = "How daemons move samples (default auto: ucx where it loads, else tcp).")
  String peerTransport;

  @Option(
      names = "--peer-fetch",
      paramLabel = "remote|always",
      description =
          "Datasets that take samples from peers (default remote: object stores, network mounts).")
  String peerFetch;

  @Option(
      names = "--dataset",
      paramLabel = "NAME=PATH",
      description =
          "A dataset to serve: a folder or s3://bucket/prefix indexed by 'sluice dataset index'."
              + " Repeatable; replaces the config file's list.")
  List<String> datasets = new ArrayList<>();

  @Override
  public Integer call() throws Exception {
    DaemonConfig cfg = load(System.getenv());
    if (printConfig) {
      spec.commandLine().getOut().print(cfg.toYaml());
      spec.commandLine().getOut().flush();
      return 0;
    }
    if (cfg.datasets().isEmpty()) {
      throw new UsageException(
          "no dataset to serve: give --dataset NAME=PATH, or datasets: in the --config file");
    }
    SluiceDaemon daemon = SluiceDaemon.start(cfg, PrefetchOptions.defaults());
    if (!io.sluice.nativeio.Cuda.isAvailable()) {
      // Said once at start: delivery=cuda is refused with the same cause, auto never takes it.
      java.util.logging.Logger.getLogger("io.sluice.server")
          .info(
              "cuda delivery unavailable: "
                  + io.sluice.nativeio.Cuda.unavailabilityCause().getMessage());
    }
    // SIGTERM and SIGINT stop the daemon gracefully and serve returns 0; the hook covers any
    // other way the JVM goes down (exit status 128 + signal then, as the JVM sets it).
    String noSignals = Signals.onTermination(daemon::stopOnSignal);
    if (noSignals != null) {
      System.err.println(
          "sluice serve: cannot handle SIGTERM itself ("
              + noSignals
              + "): a stop still ends streams and frees everything, but exits 143");
    }
    Runtime.getRuntime().addShutdownHook(new Thread(daemon::stopOnSignal, "sluice-shutdown"));
    System.out.println(
        "sluice: serving "
            + daemon.uri()
            + " datasets="
            + String.join(",", daemon.datasets().keySet())
            + " transport="
            + daemon.transport().wireName()
            + " backend="
            + daemon.backendName()
            + " memory_budget="
            + daemon.memoryBudgetBytes()
            + " shm="
            + (daemon.shmUnavailableCause() == null ? "on" : "off")
            + " cuda="
            + (io.sluice.nativeio.Cuda.isAvailable()
                ? io.sluice.nativeio.Cuda.devices().size() + "gpu"
                : "off")
            + " tls="
            + (cfg.tls() ? "on" : "off")
            + " auth="
            + (cfg.tokens() == null ? "off" : "on")
            + (daemon.metricsUri() == null ? "" : " metrics=" + daemon.metricsUri())
            + daemon.peersSummary());
    System.out.flush();
    daemon.notifyReady();
    daemon.awaitStopped();
    return 0;
  }

  /** The effective configuration from the file, {@code env} and the flags given. */
  DaemonConfig load(Map<String, String> env) {
    Map<Key, String> flags = new EnumMap<>(Key.class);
    put(flags, Key.HOST, host);
    put(flags, Key.PORT, port);
    put(flags, Key.METRICS_HOST, metricsHost);
    put(flags, Key.METRICS_PORT, metricsPort);
    put(flags, Key.MEMORY_BUDGET, memoryBudget);
    put(flags, Key.BACKEND, backend);
    put(flags, Key.TRANSPORT, transport);
    put(flags, Key.SHM_DIR, shmDir);
    put(flags, Key.TLS_CERT, tlsCert);
    put(flags, Key.TLS_KEY, tlsKey);
    put(flags, Key.INSECURE, insecure ? "true" : null);
    put(flags, Key.AUTH_TOKENS_FILE, authTokensFile);
    put(flags, Key.S3_ENDPOINT, s3Endpoint);
    put(flags, Key.S3_REGION, s3Region);
    put(flags, Key.S3_PROFILE, s3Profile);
    put(flags, Key.S3_PATH_STYLE, s3PathStyle);
    put(flags, Key.S3_MAX_IN_FLIGHT, s3MaxInFlight);
    put(flags, Key.PEERS, peers);
    put(flags, Key.NODE_RANK, nodeRank);
    put(flags, Key.PEER_TRANSPORT, peerTransport);
    put(flags, Key.PEER_FETCH, peerFetch);
    Path file = config;
    if (file == null && env.get(ConfigLoader.CONFIG_ENV) != null) {
      file = Path.of(env.get(ConfigLoader.CONFIG_ENV));
    }
    return ConfigLoader.load(file, env, flags, datasets);
  }

  private static void put(Map<Key, String> flags, Key key, String value) {
    if (value != null) {
      flags.put(key, value);
    }
  }
}
