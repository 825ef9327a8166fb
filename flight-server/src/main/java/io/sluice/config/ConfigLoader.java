package io.sluice.config;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.sluice.config.DaemonConfig.Dataset;
import io.sluice.config.DaemonConfig.Key;
import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3Settings;
import io.sluice.server.FlightTransport;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * Reads the daemon's configuration in layers, each over the one before: the defaults in {@link
 * Key}, a YAML file, the environment ({@code SLUICE_PORT}, ...), then flags. For each key the
 * highest layer that sets it wins (a list of datasets too: flags replace the file's list, they do
 * not add to it). Unknown keys in the file, bad values and bad combinations are a {@link
 * ConfigException} naming the key, the value and the layer; environment variables that are not
 * options are ignored (clients and the launcher have their own).
 */
public final class ConfigLoader {
  /** The variable naming a config file when {@code --config} is not given. */
  public static final String CONFIG_ENV = "SLUICE_CONFIG";

  private static final YAMLMapper YAML =
      YAMLMapper.builder().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION).build();

  private record Raw(String value, List<Dataset> datasets, String source) {}

  private ConfigLoader() {}

  /**
   * The configuration from {@code file} (null: none), {@code env} and {@code flags} (the serve
   * flags that were given, by key, as typed; datasets as {@code NAME=PATH} strings in {@code
   * datasetFlags}, empty when none were given).
   */
  public static DaemonConfig load(
      Path file, Map<String, String> env, Map<Key, String> flags, List<String> datasetFlags) {
    Map<Key, Raw> raw = new EnumMap<>(Key.class);
    if (file != null) {
      readFile(file, raw);
    }
    for (Key k : Key.values()) {
      String v = env.get(k.env());
      if (v == null) {
        continue;
      }
      if (k == Key.DATASETS) {
        raw.put(k, new Raw(null, parseDatasetList(k.env(), v), "environment"));
      } else {
        raw.put(k, new Raw(v, null, "environment"));
      }
    }
    flags.forEach((k, v) -> raw.put(k, new Raw(v, null, "flag")));
    if (!datasetFlags.isEmpty()) {
      List<Dataset> ds = new ArrayList<>();
      for (String spec : datasetFlags) {
        ds.add(parseDataset(Key.DATASETS.flag(), spec));
      }
      raw.put(Key.DATASETS, new Raw(null, ds, "flag"));
    }
    return typed(raw);
  }

  private static DaemonConfig typed(Map<Key, Raw> raw) {
    DaemonConfig.Builder b = DaemonConfig.builder();
    for (Map.Entry<Key, Raw> e : raw.entrySet()) {
      Key k = e.getKey();
      Raw r = e.getValue();
      b.source(k, r.source());
      String label = DaemonConfig.label(k, r.source());
      String v = r.value() == null ? null : r.value().strip();
      switch (k) {
        case HOST -> b.host(v);
        case PORT -> b.port(port(label, v));
        case METRICS_HOST -> b.metricsHost(v);
        case METRICS_PORT -> b.metricsPort(isOff(v) ? DaemonConfig.METRICS_OFF : port(label, v));
        case MEMORY_BUDGET -> b.memoryBudgetBytes(ByteSize.parse(label, v));
        case BACKEND -> b.backend(v);
        case TRANSPORT -> {
          try {
            b.transport(FlightTransport.parse(v));
          } catch (IllegalArgumentException bad) {
            throw new ConfigException(label + "=" + v + " must be one of auto, nio, io_uring", bad);
          }
        }
        case SHM_DIR -> b.shmDir(path(label, v));
        case TLS_CERT, TLS_KEY -> {
          // Set together, after the loop.
        }
        case INSECURE -> b.insecure(bool(label, v));
        case AUTH_TOKENS_FILE ->
            b.tokens(isOff(v) ? null : BearerTokens.read(label, path(label, v)));
        case DATASETS -> {
          b.clearDatasets();
          for (Dataset d : r.datasets()) {
            b.dataset(d.name(), d.location());
          }
        }
        case S3_ENDPOINT,
            S3_REGION,
            S3_PROFILE,
            S3_PATH_STYLE,
            S3_MAX_IN_FLIGHT,
            S3_MAX_ATTEMPTS,
            S3_ATTEMPT_TIMEOUT,
            S3_HEDGE,
            S3_METADATA_DIR,
            S3_SPILL_DIR,
            S3_SPILL_BUDGET,
            PEERS,
            NODE_RANK,
            PEER_TRANSPORT,
            PEER_PORT,
            PEER_BIND,
            PEER_TIMEOUT,
            PEER_FETCH -> {
          // Together, after the loop.
        }
        default -> throw new IllegalStateException("key " + k + " has no reader");
      }
    }
    Path cert = pathOrNull(raw, Key.TLS_CERT);
    Path key = pathOrNull(raw, Key.TLS_KEY);
    b.tls(cert, key);
    b.s3(s3(raw, b.s3()));
    b.peers(peers(raw, b.peers()));
    return b.build();
  }

  /**
   * The S3 settings from the S3 options among {@code raw}; "auto" (the default) leaves an optional
   * one to the environment and AWS's own chain.
   */
  private static S3Settings s3(Map<Key, Raw> raw, S3Settings defaults) {
    URI endpoint = valueOr(raw, Key.S3_ENDPOINT, ConfigLoader::endpoint, defaults.endpoint());
    String region = valueOr(raw, Key.S3_REGION, (l, v) -> v, defaults.region());
    String profile = valueOr(raw, Key.S3_PROFILE, (l, v) -> v, defaults.profile());
    Boolean pathStyle = valueOr(raw, Key.S3_PATH_STYLE, ConfigLoader::bool, defaults.pathStyle());
    int inFlight =
        valueOr(
            raw, Key.S3_MAX_IN_FLIGHT, (l, v) -> integer(l, v, 1, 4096), defaults.maxInFlight());
    int attempts =
        valueOr(raw, Key.S3_MAX_ATTEMPTS, (l, v) -> integer(l, v, 1, 100), defaults.maxAttempts());
    Duration timeout =
        valueOr(
            raw,
            Key.S3_ATTEMPT_TIMEOUT,
            (l, v) -> Duration.ofMillis(integer(l, v, 1, Integer.MAX_VALUE)),
            defaults.attemptTimeout());
    boolean hedge = valueOr(raw, Key.S3_HEDGE, ConfigLoader::bool, defaults.hedge());
    Path metadataDir =
        valueOr(
            raw,
            Key.S3_METADATA_DIR,
            (l, v) ->
                path(l, v.startsWith("~/") ? System.getProperty("user.home") + v.substring(1) : v),
            defaults.metadataDir());
    Path spillDir =
        valueOr(
            raw,
            Key.S3_SPILL_DIR,
            (l, v) -> isOff(v) ? null : path(l, home(v)),
            defaults.spillDir());
    long spillBudget =
        valueOr(raw, Key.S3_SPILL_BUDGET, ByteSize::parse, defaults.spillBudgetBytes());
    try {
      return new S3Settings(
          region,
          endpoint,
          pathStyle,
          profile,
          inFlight,
          attempts,
          timeout,
          hedge,
          metadataDir,
          spillDir,
          spillBudget);
    } catch (IllegalArgumentException e) {
      throw new ConfigException(e.getMessage(), e);
    }
  }

  /** The multi-node settings among {@code raw}. */
  private static DaemonConfig.Peers peers(Map<Key, Raw> raw, DaemonConfig.Peers d) {
    String spec =
        valueOr(raw, Key.PEERS, (l, v) -> v.isEmpty() ? DaemonConfig.Peers.NONE : v, d.spec());
    int nodeRank = valueOr(raw, Key.NODE_RANK, (l, v) -> integer(l, v, 0, 1 << 20), d.nodeRank());
    String transport =
        valueOr(raw, Key.PEER_TRANSPORT, (l, v) -> v.toLowerCase(Locale.ROOT), d.transport());
    int port = valueOr(raw, Key.PEER_PORT, ConfigLoader::port, d.port());
    String bind = valueOr(raw, Key.PEER_BIND, (l, v) -> v, d.bind());
    long timeout =
        valueOr(
            raw,
            Key.PEER_TIMEOUT,
            (l, v) -> (long) integer(l, v, 1, Integer.MAX_VALUE),
            d.timeoutMs());
    String fetch = valueOr(raw, Key.PEER_FETCH, (l, v) -> v.toLowerCase(Locale.ROOT), d.fetch());
    return new DaemonConfig.Peers(spec, nodeRank, transport, port, bind, timeout, fetch);
  }

  /** {@code ~/x} as the home folder's {@code x}. */
  private static String home(String v) {
    return v.startsWith("~/") ? System.getProperty("user.home") + v.substring(1) : v;
  }

  private static <T> T valueOr(
      Map<Key, Raw> raw, Key k, BiFunction<String, String, T> parse, T unset) {
    Raw r = raw.get(k);
    if (r == null || r.value() == null || r.value().strip().equalsIgnoreCase("auto")) {
      return unset;
    }
    return parse.apply(DaemonConfig.label(k, r.source()), r.value().strip());
  }

  private static URI endpoint(String label, String v) {
    try {
      URI u = new URI(v);
      if (!"http".equals(u.getScheme()) && !"https".equals(u.getScheme()) || u.getHost() == null) {
        throw new ConfigException(
            label + "=" + v + " must be an http(s) URL such as http://127.0.0.1:9000");
      }
      return u;
    } catch (URISyntaxException e) {
      throw new ConfigException(label + "=" + v + " is not a URL: " + e.getMessage(), e);
    }
  }

  private static int integer(String label, String v, int min, int max) {
    int n;
    try {
      n = Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new ConfigException(label + "=" + v + " must be a whole number", e);
    }
    if (n < min || n > max) {
      throw new ConfigException(label + "=" + v + " must be in " + min + ".." + max);
    }
    return n;
  }

  private static Path pathOrNull(Map<Key, Raw> raw, Key k) {
    Raw r = raw.get(k);
    if (r == null || isOff(r.value())) {
      return null;
    }
    return path(DaemonConfig.label(k, r.source()), r.value().strip());
  }

  // --- the file -------------------------------------------------------------------------------

  private static void readFile(Path file, Map<Key, Raw> raw) {
    String source = "config " + file;
    JsonNode root;
    try {
      if (!Files.isRegularFile(file)) {
        throw new ConfigException(source + ": no such file");
      }
      root = YAML.readTree(file.toFile());
    } catch (JacksonException e) {
      throw new ConfigException(
          source + ": not valid YAML: " + e.getOriginalMessage() + where(e), e);
    } catch (IOException e) {
      throw new ConfigException(source + ": cannot be read: " + e.getMessage(), e);
    }
    if (root == null || root.isMissingNode() || root.isNull()) {
      return; // an empty file: every default
    }
    if (!root.isObject()) {
      throw new ConfigException(source + ": must be a mapping of option names to values");
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> f = it.next();
      String name = f.getKey();
      JsonNode v = f.getValue();
      if (name.equals("tls") || name.equals("auth") || name.equals("s3") || name.equals("peer")) {
        if (!v.isObject()) {
          throw new ConfigException(
              source + ": " + name + " must be a mapping (" + sectionKeys(name) + ")");
        }
        for (Iterator<Map.Entry<String, JsonNode>> s = v.fields(); s.hasNext(); ) {
          Map.Entry<String, JsonNode> g = s.next();
          put(raw, source, name + "." + g.getKey(), g.getValue());
        }
      } else {
        put(raw, source, name, v);
      }
    }
  }

  private static String where(JacksonException e) {
    return e.getLocation() == null
        ? ""
        : " (line "
            + e.getLocation().getLineNr()
            + ", column "
            + e.getLocation().getColumnNr()
            + ")";
  }

  private static String sectionKeys(String section) {
    List<String> out = new ArrayList<>();
    for (Key k : Key.values()) {
      if (k.yamlName().startsWith(section + ".")) {
        out.add(k.yamlName().substring(section.length() + 1));
      }
    }
    return String.join(", ", out);
  }

  private static void put(Map<Key, Raw> raw, String source, String name, JsonNode v) {
    Key k = Key.of(name);
    if (k == null) {
      throw new ConfigException(
          source + ": unknown key '" + name + "'" + suggestion(name) + knownKeys());
    }
    if (v == null || v.isNull()) {
      throw new ConfigException(source + ": " + name + " has no value");
    }
    if (k == Key.DATASETS) {
      raw.put(k, new Raw(null, datasetsFromYaml(source, v), source));
      return;
    }
    if (k == Key.PEERS && v.isArray()) { // a YAML list of nodes, in node order
      List<String> nodes = new ArrayList<>();
      for (JsonNode n : v) {
        if (!n.isValueNode() || n.asText().isBlank()) {
          throw new ConfigException(
              source + ": peers[" + nodes.size() + "] must be HOST:PORT[+HOST:PORT]");
        }
        nodes.add(n.asText().strip());
      }
      raw.put(k, new Raw(String.join(",", nodes), null, source));
      return;
    }
    if (!v.isValueNode()) {
      throw new ConfigException(
          source
              + ": "
              + name
              + " must be a single value, not a "
              + (v.isArray() ? "list" : "mapping"));
    }
    raw.put(k, new Raw(v.asText(), null, source));
  }

  private static List<Dataset> datasetsFromYaml(String source, JsonNode v) {
    if (!v.isArray()) {
      throw new ConfigException(
          source
              + ": datasets must be a list of {name, path}, for example"
              + " datasets: [{name: tokens, path: /data/tokens}]");
    }
    List<Dataset> out = new ArrayList<>();
    for (int i = 0; i < v.size(); i++) {
      JsonNode d = v.get(i);
      String where = source + ": datasets[" + i + "]";
      if (!d.isObject()) {
        throw new ConfigException(where + " must be a mapping with name and path");
      }
      for (Iterator<String> names = d.fieldNames(); names.hasNext(); ) {
        String n = names.next();
        if (!n.equals("name") && !n.equals("path")) {
          throw new ConfigException(where + ": unknown key '" + n + "' (known: name, path)");
        }
      }
      JsonNode name = d.get("name");
      JsonNode path = d.get("path");
      if (name == null || !name.isValueNode() || name.asText().isBlank()) {
        throw new ConfigException(where + ".name is missing");
      }
      if (path == null || !path.isValueNode() || path.asText().isBlank()) {
        throw new ConfigException(where + ".path is missing for dataset '" + name.asText() + "'");
      }
      out.add(new Dataset(name.asText(), datasetPath(where + ".path", path.asText())));
    }
    return out;
  }

  private static String knownKeys() {
    List<String> names = new ArrayList<>();
    for (Key k : Key.values()) {
      names.add(k.yamlName());
    }
    return "; known: " + String.join(", ", names);
  }

  /** " (did you mean X?)" for the known key nearest to {@code name}, when one is near. */
  private static String suggestion(String name) {
    String best = null;
    int bestDistance = Integer.MAX_VALUE;
    for (Key k : Key.values()) {
      int d = distance(name.toLowerCase(Locale.ROOT), k.yamlName());
      if (d < bestDistance) {
        bestDistance = d;
        best = k.yamlName();
      }
    }
    return bestDistance <= Math.max(2, name.length() / 3) ? " (did you mean " + best + "?)" : "";
  }

  private static int distance(String a, String b) {
    int[] prev = new int[b.length() + 1];
    int[] cur = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      prev[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      cur[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
        cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.length()];
  }

  // --- values ---------------------------------------------------------------------------------

  /** {@code NAME=PATH}; a mistake names {@code label}, for example {@code --dataset}. */
  public static Dataset parseDataset(String label, String spec) {
    int eq = spec.indexOf('=');
    if (eq <= 0 || eq == spec.length() - 1) {
      throw new ConfigException(label + "=" + spec + " must be NAME=PATH");
    }
    return new Dataset(
        spec.substring(0, eq).strip(), datasetPath(label, spec.substring(eq + 1).strip()));
  }

  /** A dataset's folder, or an {@code s3://bucket/prefix}; other URL schemes are refused. */
  private static String datasetPath(String label, String path) {
    if (S3FileSystem.isS3Uri(path)) {
      try {
        S3FileSystem.checkUri(path);
      } catch (IllegalArgumentException e) {
        throw new ConfigException(label + "=" + path + ": " + e.getMessage(), e);
      }
      return path.endsWith("/") ? path.substring(0, path.length() - 1) : path;
    }
    if (path.matches("[a-zA-Z][a-zA-Z0-9+.-]*://.*")) {
      throw new ConfigException(
          label + "=" + path + ": a local folder or s3://bucket/prefix is expected");
    }
    return path(label, path).toString();
  }

  private static List<Dataset> parseDatasetList(String env, String value) {
    List<Dataset> out = new ArrayList<>();
    for (String spec : value.split(",")) {
      if (!spec.isBlank()) {
        out.add(parseDataset("environment " + env, spec.strip()));
      }
    }
    return out;
  }

  private static boolean isOff(String v) {
    return v == null
        || v.isEmpty()
        || v.equalsIgnoreCase("off")
        || v.equalsIgnoreCase("none")
        || v.equalsIgnoreCase("false");
  }

  private static int port(String label, String v) {
    int p;
    try {
      p = Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new ConfigException(label + "=" + v + " must be a port number in [0, 65535]", e);
    }
    if (p < 0 || p > 65535) {
      throw new ConfigException(label + "=" + v + " must be a port number in [0, 65535]");
    }
    return p;
  }

  private static boolean bool(String label, String v) {
    return switch (v.toLowerCase(Locale.ROOT)) {
      case "true", "yes", "on", "1" -> true;
      case "false", "no", "off", "0" -> false;
      default -> throw new ConfigException(label + "=" + v + " must be true or false");
    };
  }

  private static Path path(String label, String v) {
    try {
      return Path.of(v);
    } catch (java.nio.file.InvalidPathException e) {
      throw new ConfigException(label + "=" + v + " is not a valid path", e);
    }
  }
}
