package io.sluice.config;

import io.sluice.read.ReadBackends;
import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3Settings;
import io.sluice.server.FlightTransport;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The daemon's configuration: every option, its default and unit in {@link Key}, and the checked,
 * typed values. {@link ConfigLoader} builds one from a YAML file, the environment and flags (each
 * layer over the one before); {@link #builder()} builds one in code. Bad values and combinations
 * are refused with the key, the value and its source named. {@link #toString()} and {@link
 * #toYaml()} never show a credential.
 */
public final class DaemonConfig {

  /** Every option: its name in the YAML file, default, unit and meaning. */
  public enum Key {
    HOST(
        "host",
        "127.0.0.1",
        "address",
        "Address to listen on. Any but loopback needs TLS or insecure."),
    PORT("port", "8815", "port", "Flight port; 0 picks a free one."),
    METRICS_HOST("metrics_host", "127.0.0.1", "address", "Address of the Prometheus endpoint."),
    METRICS_PORT(
        "metrics_port",
        "off",
        "port or off",
        "Prometheus endpoint (/metrics, /healthz); 0 picks a free port."),
    MEMORY_BUDGET(
        "memory_budget",
        "4g",
        "bytes (k, m, g, t: powers of 1024)",
        "Off-heap bytes the daemon may hold: half for caches and read-ahead (from 256m up), half"
            + " for batches being built and sent, which lends what it leaves idle to the caches."),
    BACKEND(
        "backend", "auto", ReadBackends.CHOICES, "Read backend (auto: io_uring where available)."),
    TRANSPORT("transport", "auto", "auto|nio|io_uring", "Netty transport for Flight."),
    SHM_DIR("shm_dir", "/dev/shm", "path", "Shared-memory mount for shm delivery regions."),
    TLS_CERT("tls.cert", "none", "path (PEM certificate chain)", "TLS certificate; with tls.key."),
    TLS_KEY("tls.key", "none", "path (PEM PKCS#8 private key)", "TLS private key; with tls.cert."),
    INSECURE(
        "insecure",
        "false",
        "true|false",
        "Allow a non-loopback host without TLS (plaintext on the network)."),
    AUTH_TOKENS_FILE(
        "auth.tokens_file",
        "none",
        "path",
        "Bearer tokens clients must present, one per line; the file must be chmod 600."),
    S3_ENDPOINT(
        "s3.endpoint",
        "auto",
        "URL",
        "S3-compatible endpoint (MinIO, Ceph, s3proxy); auto: AWS_ENDPOINT_URL_S3, then"
            + " AWS_ENDPOINT_URL, else AWS."),
    S3_REGION(
        "s3.region",
        "auto",
        "region name",
        "auto: AWS_REGION, then the profile's, else us-east-1 beside an endpoint."),
    S3_PROFILE(
        "s3.profile",
        "auto",
        "profile name",
        "AWS profile for credentials and region; auto: AWS_PROFILE, else default. Credentials"
            + " come from the AWS chain (environment, profile files, instance role), never from"
            + " this file."),
    S3_PATH_STYLE(
        "s3.path_style",
        "auto",
        "auto|true|false",
        "Path-style addressing (host/bucket/key); auto: on exactly when an endpoint is set."),
    S3_MAX_IN_FLIGHT(
        "s3.max_in_flight",
        "64",
        "requests",
        "Ranged GETs in flight at most; the read-ahead adapts below it to the store's latency."),
    S3_MAX_ATTEMPTS(
        "s3.max_attempts",
        "6",
        "tries",
        "Tries per request (5xx, throttling, resets, truncated bodies, timeouts are retried)."),
    S3_ATTEMPT_TIMEOUT(
        "s3.attempt_timeout_ms",
        "30000",
        "milliseconds",
        "A try without an answer by then is abandoned and retried."),
    S3_HEDGE(
        "s3.hedge",
        "true",
        "true|false",
        "Send a second request for a read 4x slower than the median of its size."),
    S3_METADATA_DIR(
        "s3.metadata_dir",
        "~/.cache/sluice/s3",
        "path",
        "Where manifests and index files go when the bucket is read-only."),
    S3_SPILL_DIR(
        "s3.spill_dir",
        "none",
        "path or none",
        "A local NVMe folder for a spill tier: samples fetched from object stores stay there, under"
            + " s3.spill_budget, evicted by the plan like memory; re-reads skip the store."),
    S3_SPILL_BUDGET(
        "s3.spill_budget",
        "32g",
        "bytes (k, m, g, t: powers of 1024)",
        "The spill tier's size on disk, shared by the object-store datasets."),
    PEERS(
        "peers",
        "none",
        "none | HOST:PORT[+HOST:PORT][@W],... | slurm | dns:NAME[:PORT]",
        "The job's daemons, one per node in node order (a node's NICs joined by '+', @W weighs a"
            + " path); slurm: from SLURM_JOB_NODELIST and SLURM_NODEID; dns: every address of a"
            + " Kubernetes headless service, sorted."),
    NODE_RANK(
        "node_rank",
        "auto",
        "index or auto",
        "This node's place in peers; auto: from Slurm or DNS (an explicit list needs it)."),
    PEER_TRANSPORT(
        "peer.transport",
        "auto",
        "auto|ucx|tcp|disni",
        "How daemons move samples: ucx (RDMA where there is a device, TCP elsewhere), tcp"
            + " (Netty), disni (verbs only); auto: ucx where it loads, else tcp."),
    PEER_PORT("peer.port", "8816", "port", "Port of a peer given without one (slurm, dns, HOST)."),
    PEER_BIND(
        "peer.bind",
        "auto",
        "address or auto",
        "Where this node's peer server listens; auto: each of its own addresses in peers."),
    PEER_TIMEOUT(
        "peer.timeout_ms",
        "2000",
        "milliseconds",
        "A peer that has not answered by then is skipped for a while; storage serves."),
    PEER_FETCH(
        "peer.fetch",
        "remote",
        "remote|always",
        "Which datasets take samples from peers' caches: remote: object stores and network"
            + " mounts (NFS, Lustre, ...); always: local folders too."),
    DATASETS(
        "datasets",
        "[]",
        "list of {name, path}",
        "Datasets to serve: a folder or s3://bucket/prefix; a name is letters, digits, '.', '_'"
            + " or '-'.");

    private final String yamlName;
    private final String defaultValue;
    private final String unit;
    private final String meaning;

    Key(String yamlName, String defaultValue, String unit, String meaning) {
      this.yamlName = yamlName;
      this.defaultValue = defaultValue;
      this.unit = unit;
      this.meaning = meaning;
    }

    /** The name in the YAML file, a dotted path for nested sections ({@code tls.cert}). */
    public String yamlName() {
      return yamlName;
    }

    public String defaultValue() {
      return defaultValue;
    }

    public String unit() {
      return unit;
    }

    public String meaning() {
      return meaning;
    }

    /** The environment variable: {@code SLUICE_} and the name in capitals, dots as underscores. */
    public String env() {
      return "SLUICE_" + yamlName.toUpperCase(Locale.ROOT).replace('.', '_');
    }

    /** The serve flag: {@code --} and the name with dashes ({@code --dataset} for datasets). */
    public String flag() {
      return this == DATASETS ? "--dataset" : "--" + yamlName.replace('.', '-').replace('_', '-');
    }

    /** The key named {@code yamlName}, or null. */
    public static Key of(String yamlName) {
      for (Key k : values()) {
        if (k.yamlName.equals(yamlName)) {
          return k;
        }
      }
      return null;
    }
  }

  /**
   * A dataset to serve: a name clients ask for and where its files are.
   *
   * @param location a local folder, or {@code s3://bucket/prefix}
   */
  public record Dataset(String name, String location) {
    public boolean isS3() {
      return S3FileSystem.isS3Uri(location);
    }

    /** The local folder; only for a dataset that is not in an object store. */
    public Path localPath() {
      if (isS3()) {
        throw new IllegalStateException("dataset " + name + " is at " + location + ", not local");
      }
      return Path.of(location);
    }
  }

  /**
   * The multi-node settings, as configured: the topology itself is resolved when the daemon starts
   * (Slurm's environment, DNS).
   *
   * @param spec {@link Key#PEERS}: "none" for a single node
   * @param nodeRank this node's index, or -1 for auto
   * @param bind the peer server's address, or null for this node's own addresses in the list
   */
  public record Peers(
      String spec,
      int nodeRank,
      String transport,
      int port,
      String bind,
      long timeoutMs,
      String fetch) {
    public static final String NONE = "none";

    public boolean enabled() {
      return !NONE.equals(spec);
    }

    /** Whether datasets in local folders take samples from peers too. */
    public boolean fetchLocal() {
      return "always".equals(fetch);
    }

    static Peers defaults() {
      return new Peers(NONE, -1, "auto", 8816, null, 2000, "remote");
    }
  }

  /** Dataset names: safe in URLs, file names and metric labels; never a path. */
  static final Pattern DATASET_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

  /** Smallest memory budget accepted: room for gRPC's buffers and a small batch. */
  public static final long MIN_MEMORY_BUDGET_BYTES = 1 << 20;

  /** {@link #metricsPort()} when the endpoint is off. */
  public static final int METRICS_OFF = -1;

  private final String host;
  private final int port;
  private final String metricsHost;
  private final int metricsPort;
  private final long memoryBudgetBytes;
  private final String backend;
  private final FlightTransport transport;
  private final Path shmDir;
  private final Path tlsCert;
  private final Path tlsKey;
  private final boolean insecure;
  private final BearerTokens tokens;
  private final S3Settings s3;
  private final List<Dataset> datasets;
  private final Peers peers;
  private final Map<Key, String> sources;

  private DaemonConfig(Builder b) {
    this.host = b.host;
    this.port = b.port;
    this.metricsHost = b.metricsHost;
    this.metricsPort = b.metricsPort;
    this.memoryBudgetBytes = b.memoryBudgetBytes;
    this.backend = b.backend;
    this.transport = b.transport;
    this.shmDir = b.shmDir;
    this.tlsCert = b.tlsCert;
    this.tlsKey = b.tlsKey;
    this.insecure = b.insecure;
    this.tokens = b.tokens;
    this.s3 = b.s3;
    this.datasets = List.copyOf(b.datasets);
    this.peers = b.peers;
    this.sources = new EnumMap<>(b.sources);
  }

  public static Builder builder() {
    return new Builder();
  }

  public String host() {
    return host;
  }

  public int port() {
    return port;
  }

  public String metricsHost() {
    return metricsHost;
  }

  /** The Prometheus port, 0 for any free one, or {@link #METRICS_OFF}. */
  public int metricsPort() {
    return metricsPort;
  }

  public long memoryBudgetBytes() {
    return memoryBudgetBytes;
  }

  /** The read backend choice: auto, posix, io_uring or io_uring+direct. */
  public String backend() {
    return backend;
  }

  public FlightTransport transport() {
    return transport;
  }

  public Path shmDir() {
    return shmDir;
  }

  /** The TLS certificate chain, or null when the daemon serves plaintext. */
  public Path tlsCert() {
    return tlsCert;
  }

  /** The TLS private key, or null when the daemon serves plaintext. */
  public Path tlsKey() {
    return tlsKey;
  }

  public boolean tls() {
    return tlsCert != null;
  }

  public boolean insecure() {
    return insecure;
  }

  /** The tokens clients must present, or null when any client on the network may connect. */
  public BearerTokens tokens() {
    return tokens;
  }

  public List<Dataset> datasets() {
    return datasets;
  }

  /** How to reach object stores, as configured (the environment is applied when they open). */
  public S3Settings s3() {
    return s3;
  }

  /** The multi-node settings; {@link Peers#enabled()} false for a single node. */
  public Peers peers() {
    return peers;
  }

  /** True when some dataset is in an object store. */
  public boolean usesS3() {
    return datasets.stream().anyMatch(Dataset::isS3);
  }

  /** Where {@code key}'s value came from: "default", "config FILE", "environment X", "flag --x". */
  public String source(Key key) {
    String s = sources.getOrDefault(key, "default");
    return switch (s) {
      case "flag" -> "flag " + key.flag();
      case "environment" -> "environment " + key.env();
      default -> s;
    };
  }

  /** The effective configuration as YAML, each line with its source; tokens are never shown. */
  public String toYaml() {
    StringBuilder y = new StringBuilder();
    line(y, Key.HOST, host);
    line(y, Key.PORT, Integer.toString(port));
    line(y, Key.METRICS_HOST, metricsHost);
    line(y, Key.METRICS_PORT, metricsPort == METRICS_OFF ? "off" : Integer.toString(metricsPort));
    line(y, Key.MEMORY_BUDGET, ByteSize.format(memoryBudgetBytes));
    line(y, Key.BACKEND, backend);
    line(y, Key.TRANSPORT, transport.wireName());
    line(y, Key.SHM_DIR, shmDir.toString());
    line(y, Key.INSECURE, Boolean.toString(insecure));
    y.append("tls:\n");
    line(y, "  cert", Key.TLS_CERT, tlsCert == null ? "none" : tlsCert.toString());
    line(y, "  key", Key.TLS_KEY, tlsKey == null ? "none" : tlsKey.toString());
    y.append("auth:\n");
    String tokensNote = tokens == null ? "" : "; " + tokens.count() + " token(s), not shown";
    line(
        y,
        "  tokens_file",
        tokens == null ? "none" : tokens.file().toString(),
        source(Key.AUTH_TOKENS_FILE) + tokensNote);
    y.append("s3:\n");
    line(
        y,
        "  endpoint",
        Key.S3_ENDPOINT,
        s3.endpoint() == null ? "auto" : s3.endpoint().toString());
    line(y, "  region", Key.S3_REGION, s3.region() == null ? "auto" : s3.region());
    line(y, "  profile", Key.S3_PROFILE, s3.profile() == null ? "auto" : s3.profile());
    line(
        y,
        "  path_style",
        Key.S3_PATH_STYLE,
        s3.pathStyle() == null ? "auto" : s3.pathStyle().toString());
    line(y, "  max_in_flight", Key.S3_MAX_IN_FLIGHT, Integer.toString(s3.maxInFlight()));
    line(y, "  max_attempts", Key.S3_MAX_ATTEMPTS, Integer.toString(s3.maxAttempts()));
    line(
        y,
        "  attempt_timeout_ms",
        Key.S3_ATTEMPT_TIMEOUT,
        Long.toString(s3.attemptTimeout().toMillis()));
    line(y, "  hedge", Key.S3_HEDGE, Boolean.toString(s3.hedge()));
    line(y, "  metadata_dir", Key.S3_METADATA_DIR, homeAsTilde(s3.metadataDir()));
    line(
        y,
        "  spill_dir",
        Key.S3_SPILL_DIR,
        s3.spillDir() == null ? "none" : s3.spillDir().toString());
    line(y, "  spill_budget", Key.S3_SPILL_BUDGET, ByteSize.format(s3.spillBudgetBytes()));
    line(y, Key.PEERS, peers.spec());
    line(y, Key.NODE_RANK, peers.nodeRank() < 0 ? "auto" : Integer.toString(peers.nodeRank()));
    y.append("peer:\n");
    line(y, "  transport", Key.PEER_TRANSPORT, peers.transport());
    line(y, "  port", Key.PEER_PORT, Integer.toString(peers.port()));
    line(y, "  bind", Key.PEER_BIND, peers.bind() == null ? "auto" : peers.bind());
    line(y, "  timeout_ms", Key.PEER_TIMEOUT, Long.toString(peers.timeoutMs()));
    line(y, "  fetch", Key.PEER_FETCH, peers.fetch());
    if (datasets.isEmpty()) {
      y.append("datasets: []  # ").append(source(Key.DATASETS)).append('\n'); // a list, unquoted
    } else {
      y.append("datasets:  # ").append(source(Key.DATASETS)).append('\n');
      for (Dataset d : datasets) {
        y.append("  - name: ").append(quote(d.name())).append('\n');
        y.append("    path: ").append(quote(d.location())).append('\n');
      }
    }
    return y.toString();
  }

  private void line(StringBuilder y, Key key, String value) {
    line(y, key.yamlName(), key, value);
  }

  private void line(StringBuilder y, String name, Key key, String value) {
    line(y, name, value, source(key));
  }

  private static void line(StringBuilder y, String name, String value, String comment) {
    y.append(name).append(": ").append(quote(value)).append("  # ").append(comment).append('\n');
  }

  private static String quote(String v) {
    return v.matches("[A-Za-z0-9_./+-]+") ? v : "'" + v.replace("'", "''") + "'";
  }

  @Override
  public String toString() {
    return "DaemonConfig[" + toYaml().replace('\n', ' ').strip() + "]";
  }

  /** Builds a config in code; {@link #build()} checks it as {@link ConfigLoader} does. */
  public static final class Builder {
    private String host = "127.0.0.1";
    private int port = 8815;
    private String metricsHost = "127.0.0.1";
    private int metricsPort = METRICS_OFF;
    private long memoryBudgetBytes = 4L << 30;
    private String backend = ReadBackends.AUTO;
    private FlightTransport transport = FlightTransport.AUTO;
    private Path shmDir = Path.of("/dev/shm");
    private Path tlsCert;
    private Path tlsKey;
    private boolean insecure;
    private BearerTokens tokens;
    private S3Settings s3 = S3Settings.defaults(defaultMetadataDir());
    private final List<Dataset> datasets = new ArrayList<>();
    private Peers peers = Peers.defaults();
    private final Map<Key, String> sources = new EnumMap<>(Key.class);

    private Builder() {}

    public Builder peers(Peers v) {
      peers = v;
      return this;
    }

    Peers peers() {
      return peers;
    }

    public Builder host(String v) {
      host = v;
      return this;
    }

    public Builder port(int v) {
      port = v;
      return this;
    }

    public Builder metricsHost(String v) {
      metricsHost = v;
      return this;
    }

    public Builder metricsPort(int v) {
      metricsPort = v;
      return this;
    }

    public Builder memoryBudgetBytes(long v) {
      memoryBudgetBytes = v;
      return this;
    }

    public Builder backend(String v) {
      backend = v;
      return this;
    }

    public Builder transport(FlightTransport v) {
      transport = v;
      return this;
    }

    public Builder shmDir(Path v) {
      shmDir = v;
      return this;
    }

    public Builder tls(Path cert, Path key) {
      tlsCert = cert;
      tlsKey = key;
      return this;
    }

    public Builder insecure(boolean v) {
      insecure = v;
      return this;
    }

    public Builder tokens(BearerTokens v) {
      tokens = v;
      return this;
    }

    public Builder dataset(String name, Path path) {
      datasets.add(new Dataset(name, path.toString()));
      return this;
    }

    /** A dataset at a local folder or an {@code s3://bucket/prefix}. */
    public Builder dataset(String name, String location) {
      datasets.add(new Dataset(name, location));
      return this;
    }

    public Builder s3(S3Settings v) {
      s3 = v;
      return this;
    }

    S3Settings s3() {
      return s3;
    }

    public Builder datasets(Map<String, Path> byName) {
      byName.forEach(this::dataset);
      return this;
    }

    public Builder clearDatasets() {
      datasets.clear();
      return this;
    }

    Builder source(Key key, String source) {
      sources.put(key, source);
      return this;
    }

    /** Checks every value and combination; a mistake is a {@link ConfigException}. */
    public DaemonConfig build() {
      check();
      return new DaemonConfig(this);
    }

    private String at(Key key) {
      return label(key, sources.getOrDefault(key, "default"));
    }

    private void check() {
      if (host == null || host.isBlank()) {
        throw new ConfigException(at(Key.HOST) + "='" + host + "' must be an address");
      }
      checkPort(Key.PORT, port);
      if (metricsPort != METRICS_OFF) {
        checkPort(Key.METRICS_PORT, metricsPort);
      }
      if (memoryBudgetBytes < MIN_MEMORY_BUDGET_BYTES) {
        throw new ConfigException(
            at(Key.MEMORY_BUDGET)
                + "="
                + memoryBudgetBytes
                + " must be at least "
                + MIN_MEMORY_BUDGET_BYTES
                + " bytes (1m)");
      }
      try {
        ReadBackends.checkChoice(backend);
      } catch (IllegalArgumentException e) {
        throw new ConfigException(
            at(Key.BACKEND) + "=" + backend + " must be one of " + ReadBackends.CHOICES, e);
      }
      if ((tlsCert == null) != (tlsKey == null)) {
        Key missing = tlsCert == null ? Key.TLS_CERT : Key.TLS_KEY;
        throw new ConfigException(
            "tls.cert and tls.key go together: " + missing.yamlName() + " is missing");
      }
      if (tlsCert != null) {
        checkReadable(Key.TLS_CERT, tlsCert);
        checkReadable(Key.TLS_KEY, tlsKey);
      }
      boolean loopback;
      try {
        loopback = isLoopback(host);
      } catch (UnknownHostException e) {
        throw new ConfigException(at(Key.HOST) + "=" + host + " does not resolve (" + e + ")", e);
      }
      if (tlsCert == null && !insecure && !loopback) {
        throw new ConfigException(
            at(Key.HOST)
                + "="
                + host
                + " is not a loopback address: serving beyond this host needs TLS (tls.cert and"
                + " tls.key) or, on a network you trust, insecure: true");
      }
      checkPeers();
      Set<String> names = new LinkedHashSet<>();
      for (int i = 0; i < datasets.size(); i++) {
        Dataset d = datasets.get(i);
        String where = at(Key.DATASETS) + "[" + i + "]";
        if (d.name() == null || !DATASET_NAME.matcher(d.name()).matches()) {
          throw new ConfigException(
              where
                  + ".name='"
                  + d.name()
                  + "' must be 1-128 letters, digits, '.', '_' or '-', starting with a letter"
                  + " or digit");
        }
        if (d.location() == null || d.location().isEmpty()) {
          throw new ConfigException(where + ".path is missing for dataset '" + d.name() + "'");
        }
        if (!names.add(d.name())) {
          throw new ConfigException(where + ".name='" + d.name() + "' is given twice");
        }
      }
    }

    private void checkPeers() {
      if (!Set.of("auto", "ucx", "tcp", "disni").contains(peers.transport())) {
        throw new ConfigException(
            at(Key.PEER_TRANSPORT)
                + "="
                + peers.transport()
                + " must be one of auto, ucx, tcp, disni");
      }
      if (!Set.of("remote", "always").contains(peers.fetch())) {
        throw new ConfigException(
            at(Key.PEER_FETCH) + "=" + peers.fetch() + " must be one of remote, always");
      }
      if (peers.timeoutMs() < 1) {
        throw new ConfigException(at(Key.PEER_TIMEOUT) + "=" + peers.timeoutMs() + " must be >= 1");
      }
      if (peers.port() < 1 || peers.port() > 65535) {
        throw new ConfigException(
            at(Key.PEER_PORT) + "=" + peers.port() + " must be in [1, 65535]");
      }
      if (!peers.enabled()) {
        return;
      }
      String spec = peers.spec();
      boolean discovered = spec.equals("slurm") || spec.startsWith("dns:");
      List<String> ownHosts = new ArrayList<>();
      if (!discovered) {
        io.sluice.peer.PeerTopology t;
        try {
          t = io.sluice.peer.PeerTopology.parse(spec, peers.nodeRank(), peers.port());
        } catch (IllegalArgumentException e) {
          String hint =
              peers.nodeRank() < 0 ? " (" + Key.NODE_RANK.flag() + " is needed with a list)" : "";
          throw new ConfigException(at(Key.PEERS) + ": " + e.getMessage() + hint, e);
        }
        for (io.sluice.peer.PeerPath p : t.self().paths()) {
          ownHosts.add(p.address().getHostString());
        }
      }
      if (peers.bind() != null) {
        ownHosts = List.of(peers.bind());
      }
      boolean loopback = !ownHosts.isEmpty();
      for (String h : ownHosts) {
        try {
          loopback &= isLoopback(h);
        } catch (UnknownHostException e) {
          loopback = false;
        }
      }
      if (!loopback && !insecure) {
        throw new ConfigException(
            at(Key.PEERS)
                + "="
                + spec
                + ": daemons exchange samples with each other in plaintext and without tokens; on"
                + " a network you trust set insecure: true (or bind peer.bind to loopback)");
      }
    }

    private void checkPort(Key key, int p) {
      if (p < 0 || p > 65535) {
        throw new ConfigException(at(key) + "=" + p + " must be in [0, 65535]");
      }
    }

    private void checkReadable(Key key, Path p) {
      if (!java.nio.file.Files.isReadable(p)) {
        throw new ConfigException(at(key) + "=" + p + ": no such file, or not readable");
      }
    }
  }

  /** {@code ~/.cache/sluice/s3}. */
  static Path defaultMetadataDir() {
    return Path.of(System.getProperty("user.home"), ".cache", "sluice", "s3");
  }

  /** {@code p} with the home folder written {@code ~}, as the defaults are. */
  private static String homeAsTilde(Path p) {
    Path home = Path.of(System.getProperty("user.home"));
    return p.startsWith(home) && !p.equals(home) ? "~/" + home.relativize(p) : p.toString();
  }

  /**
   * How a message names {@code key} set from {@code source}: {@code --port} for a flag, {@code
   * environment SLUICE_PORT}, {@code config FILE: port}, or just {@code port} for a default.
   */
  static String label(Key key, String source) {
    if (source.equals("flag")) {
      return key.flag();
    }
    if (source.equals("environment")) {
      return "environment " + key.env();
    }
    return source.equals("default") ? key.yamlName() : source + ": " + key.yamlName();
  }

  /** Whether {@code host} names this machine's loopback (resolving names such as localhost). */
  static boolean isLoopback(String host) throws UnknownHostException {
    for (InetAddress a : InetAddress.getAllByName(host)) {
      if (!a.isLoopbackAddress()) {
        return false;
      }
    }
    return true;
  }
}
