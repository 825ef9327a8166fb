package io.sluice.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.config.DaemonConfig.Key;
import io.sluice.s3.S3Settings;
import io.sluice.server.FlightTransport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ConfigLoaderTest {
  @TempDir Path dir;

  private Path yaml(String text) throws IOException {
    Path f = dir.resolve("sluice.yaml");
    Files.writeString(f, text);
    return f;
  }

  private static DaemonConfig load(Path file, Map<String, String> env, Map<Key, String> flags) {
    return ConfigLoader.load(file, env, flags, List.of());
  }

  private ConfigException refused(String text) throws IOException {
    Path f = yaml(text);
    return assertThrows(ConfigException.class, () -> load(f, Map.of(), Map.of()));
  }

  @Test
  void defaultsAreTheOnesTheKeysName() {
    DaemonConfig c = load(null, Map.of(), Map.of());
    assertEquals("127.0.0.1", c.host());
    assertEquals(8815, c.port());
    assertEquals(DaemonConfig.METRICS_OFF, c.metricsPort());
    assertEquals(4L << 30, c.memoryBudgetBytes());
    assertEquals("auto", c.backend());
    assertEquals(FlightTransport.AUTO, c.transport());
    assertEquals(Path.of("/dev/shm"), c.shmDir());
    assertFalse(c.tls());
    assertFalse(c.insecure());
    assertNull(c.tokens());
    assertTrue(c.datasets().isEmpty());
    String printed = c.toYaml();
    for (Key k : Key.values()) {
      assertEquals("default", c.source(k), k.yamlName());
      // The builder's defaults and the ones the keys name (docs, --help) are the same.
      String name = k.yamlName().contains(".") ? "  " + k.yamlName().split("\\.")[1] : k.yamlName();
      assertTrue(
          printed.contains(name + ": " + k.defaultValue() + "  # default\n")
              || printed.contains(name + ": '" + k.defaultValue() + "'  # default\n"),
          () -> k.yamlName() + " default " + k.defaultValue() + " not in:\n" + printed);
    }
  }

  @Test
  void aFullFileIsReadAndEachValueKnowsItsSource() throws IOException {
    Path tokens = dir.resolve("tokens");
    Files.writeString(tokens, "# ops\n0123456789abcdef0123\n");
    Files.setPosixFilePermissions(tokens, PosixFilePermissions.fromString("rw-------"));
    Path f =
        yaml(
            """
            host: localhost
            port: 9000
            metrics_port: 9100
            memory_budget: 512m
            backend: posix
            transport: nio
            shm_dir: /tmp
            auth:
              tokens_file: %s
            datasets:
              - {name: tokens, path: /data/tokens}
              - name: web
                path: /data/web
            """
                .formatted(tokens));
    DaemonConfig c = load(f, Map.of(), Map.of());
    assertEquals("localhost", c.host());
    assertEquals(9000, c.port());
    assertEquals(9100, c.metricsPort());
    assertEquals(512L << 20, c.memoryBudgetBytes());
    assertEquals("posix", c.backend());
    assertEquals(FlightTransport.NIO, c.transport());
    assertEquals(1, c.tokens().count());
    assertTrue(c.tokens().accepts("0123456789abcdef0123"));
    assertFalse(c.tokens().accepts("0123456789abcdef012"));
    assertEquals(
        List.of(
            new DaemonConfig.Dataset("tokens", "/data/tokens"),
            new DaemonConfig.Dataset("web", "/data/web")),
        c.datasets());
    assertEquals("config " + f, c.source(Key.PORT));
    String printed = c.toYaml();
    assertTrue(printed.contains("port: 9000  # config " + f), printed);
    assertTrue(printed.contains("1 token(s), not shown"), printed);
    assertFalse(printed.contains("0123456789abcdef0123"), "a token is never printed");
    assertFalse(c.toString().contains("0123456789abcdef0123"), "nor in toString");
  }

  @Test
  void environmentOverridesTheFileAndFlagsOverrideBoth() throws IOException {
    Path f = yaml("port: 9000\nmemory_budget: 512m\nbackend: posix\n");
    Map<String, String> env =
        Map.of(
            "SLUICE_PORT", "9001",
            "SLUICE_MEMORY_BUDGET", "1g",
            "SLUICE_DATASETS", "a=/data/a,b=/data/b",
            "SLUICE_LAUNCHER", "/not/an/option"); // other SLUICE_ variables are not options
    Map<Key, String> flags = new EnumMap<>(Key.class);
    flags.put(Key.PORT, "9002");
    DaemonConfig c = load(f, env, flags);
    assertEquals(9002, c.port());
    assertEquals("flag --port", c.source(Key.PORT));
    assertEquals(1L << 30, c.memoryBudgetBytes());
    assertEquals("environment SLUICE_MEMORY_BUDGET", c.source(Key.MEMORY_BUDGET));
    assertEquals("posix", c.backend());
    assertEquals(2, c.datasets().size());
    DaemonConfig flagged = ConfigLoader.load(f, env, Map.of(), List.of("only=/data/only"));
    assertEquals(
        List.of(new DaemonConfig.Dataset("only", "/data/only")),
        flagged.datasets(),
        "datasets from flags replace the lower layers' list");
  }

  @Test
  void s3OptionsLayerLikeTheOthersAndTheAwsEnvironmentFillsWhatIsLeft() throws IOException {
    Path f =
        yaml(
            "s3:\n  region: eu-west-1\n  max_in_flight: 32\n  hedge: false\n"
                + "datasets: [{name: web, path: 's3://my-bucket/web/'}, {name: local, path: /d}]\n");
    Map<String, String> env =
        Map.of("SLUICE_S3_MAX_IN_FLIGHT", "48", "AWS_ENDPOINT_URL", "http://10.0.0.5:9000");
    Map<Key, String> flags = new EnumMap<>(Key.class);
    flags.put(Key.S3_PATH_STYLE, "false");
    DaemonConfig c = load(f, env, flags);
    assertEquals("eu-west-1", c.s3().region());
    assertEquals(48, c.s3().maxInFlight());
    assertEquals("environment SLUICE_S3_MAX_IN_FLIGHT", c.source(Key.S3_MAX_IN_FLIGHT));
    assertFalse(c.s3().hedge());
    assertEquals(Boolean.FALSE, c.s3().pathStyle());
    assertNull(c.s3().endpoint(), "AWS_* variables are applied when the store opens, not here");
    assertEquals(
        List.of(
            new DaemonConfig.Dataset("web", "s3://my-bucket/web"),
            new DaemonConfig.Dataset("local", "/d")),
        c.datasets());
    assertTrue(c.usesS3());
    assertTrue(c.datasets().get(0).isS3());
    assertTrue(c.toYaml().contains("  region: eu-west-1  # config "), c.toYaml());

    S3Settings resolved = c.s3().resolve(env);
    assertEquals(java.net.URI.create("http://10.0.0.5:9000"), resolved.endpoint());
    assertEquals("eu-west-1", resolved.region(), "the config's region beats the environment's");
    assertFalse(resolved.usePathStyle(), "the flag said false");
    S3Settings byEnv =
        S3Settings.defaults(dir).resolve(Map.of("AWS_ENDPOINT_URL_S3", "http://h:1"));
    assertEquals("us-east-1", byEnv.region(), "an endpoint without a region gets us-east-1");
    assertTrue(byEnv.usePathStyle(), "path style is on beside an endpoint");
    S3Settings aws = S3Settings.defaults(dir).resolve(Map.of("AWS_REGION", "ap-south-1"));
    assertNull(aws.endpoint());
    assertFalse(aws.usePathStyle(), "virtual-host addressing on AWS itself");
  }

  @Test
  void anEmptyFileMeansEveryDefault() throws IOException {
    assertEquals(8815, load(yaml(""), Map.of(), Map.of()).port());
  }

  @Test
  void unknownKeysAreRefusedWithTheNearestKnownOne() throws IOException {
    ConfigException e = refused("memory_budjet: 4g\n");
    assertTrue(
        e.getMessage().contains("unknown key 'memory_budjet' (did you mean memory_budget?)"),
        e.getMessage());
    assertTrue(e.getMessage().startsWith("config " + dir.resolve("sluice.yaml") + ": "));
    ConfigException nested = refused("tls:\n  crt: /x\n");
    assertTrue(
        nested.getMessage().contains("unknown key 'tls.crt' (did you mean tls.cert?)"),
        nested.getMessage());
    ConfigException far = refused("replicas: [a, b]\n");
    assertTrue(
        far.getMessage().contains("unknown key 'replicas'; known: host, port"), far.getMessage());
    ConfigException inDataset = refused("datasets:\n  - {name: a, pth: /x}\n");
    assertTrue(
        inDataset.getMessage().contains("datasets[0]: unknown key 'pth' (known: name, path)"),
        inDataset.getMessage());
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "port: 70000|port=70000 must be a port number in [0, 65535]",
        "port: eighty|port=eighty must be a port number in [0, 65535]",
        "metrics_port: -5|metrics_port=-5 must be a port number in [0, 65535]",
        "memory_budget: 4x|memory_budget=4x must be a size such as 512m or 8g",
        "memory_budget: 512k|memory_budget=524288 must be at least 1048576 bytes (1m)",
        "backend: spdk|backend=spdk must be one of auto, posix, io_uring, io_uring+direct",
        "transport: rdma|transport=rdma must be one of auto, nio, io_uring",
        "insecure: maybe|insecure=maybe must be true or false",
        "port: [1, 2]|port must be a single value, not a list",
        "tls: /etc/cert|tls must be a mapping (cert, key)",
        "datasets: /data|datasets must be a list of {name, path}",
        "datasets: [{name: ../../etc, path: /x}]|datasets[0].name='../../etc' must be 1-128 letters",
        "datasets: [{name: a, path: /x}, {name: a, path: /y}]|datasets[1].name='a' is given twice",
        "datasets: [{name: a}]|datasets[0].path is missing for dataset 'a'",
        "datasets: [{name: a, path: 's3://B_ad/x'}]|datasets[0].path=s3://B_ad/x: path=s3://B_ad/x:"
            + " bucket=B_ad is not a valid S3 bucket name",
        "datasets: [{name: a, path: 's3://bucket/../x'}]|'..' is not allowed in a key",
        "datasets: [{name: a, path: 'gs://bucket/x'}]|a local folder or s3://bucket/prefix is expected",
        "s3: {endpoint: 'ftp://h'}|s3.endpoint=ftp://h must be an http(s) URL",
        "s3: {max_in_flight: 0}|s3.max_in_flight=0 must be in 1..4096",
        "s3: {max_in_flight: lots}|s3.max_in_flight=lots must be a whole number",
        "s3: {hedge: maybe}|s3.hedge=maybe must be true or false",
        "s3: {regoin: x}|unknown key 's3.regoin' (did you mean s3.region?)",
        "port:|port has no value",
        "port: 1\\nport: 2|not valid YAML: Duplicate field 'port'",
        "host: [unclosed|not valid YAML",
        "- just\\n- a list|must be a mapping of option names to values",
      })
  void badValuesNameTheKeyTheValueAndTheFile(String text, String expected) throws IOException {
    ConfigException e = refused(text.replace("\\n", "\n") + "\n");
    assertTrue(
        e.getMessage().contains(expected), () -> e.getMessage() + "\n  expected: " + expected);
    assertTrue(e.getMessage().contains(dir.resolve("sluice.yaml").toString()), e.getMessage());
  }

  @Test
  void badEnvironmentAndFlagValuesNameTheirSource() {
    ConfigException env =
        assertThrows(ConfigException.class, () -> load(null, Map.of("SLUICE_PORT", "x"), Map.of()));
    assertEquals("environment SLUICE_PORT=x must be a port number in [0, 65535]", env.getMessage());
    ConfigException flag =
        assertThrows(
            ConfigException.class, () -> load(null, Map.of(), Map.of(Key.MEMORY_BUDGET, "lots")));
    assertEquals("--memory-budget=lots must be a size such as 512m or 8g", flag.getMessage());
    ConfigException spec =
        assertThrows(
            ConfigException.class,
            () -> ConfigLoader.load(null, Map.of(), Map.of(), List.of("nopath")));
    assertEquals("--dataset=nopath must be NAME=PATH", spec.getMessage());
  }

  @Test
  void aMissingFileIsNamed() {
    Path f = dir.resolve("nope.yaml");
    ConfigException e = assertThrows(ConfigException.class, () -> load(f, Map.of(), Map.of()));
    assertEquals("config " + f + ": no such file", e.getMessage());
  }

  @Test
  void listeningBeyondLoopbackNeedsTlsOrInsecure() {
    ConfigException e =
        assertThrows(
            ConfigException.class, () -> load(null, Map.of(), Map.of(Key.HOST, "0.0.0.0")));
    assertTrue(
        e.getMessage()
            .startsWith(
                "--host=0.0.0.0 is not a loopback address: serving beyond this host needs TLS"),
        e.getMessage());
    DaemonConfig c = load(null, Map.of(), Map.of(Key.HOST, "0.0.0.0", Key.INSECURE, "true"));
    assertTrue(c.insecure());
    assertEquals("localhost", load(null, Map.of(), Map.of(Key.HOST, "localhost")).host());
  }

  @Test
  void tlsNeedsBothFilesAndReadableOnes() throws IOException {
    ConfigException half =
        assertThrows(
            ConfigException.class, () -> load(null, Map.of(), Map.of(Key.TLS_CERT, "/x.pem")));
    assertEquals("tls.cert and tls.key go together: tls.key is missing", half.getMessage());
    ConfigException missing =
        assertThrows(
            ConfigException.class,
            () ->
                load(
                    null,
                    Map.of(),
                    Map.of(Key.TLS_CERT, "/no/cert.pem", Key.TLS_KEY, "/no/key.pem")));
    assertEquals("--tls-cert=/no/cert.pem: no such file, or not readable", missing.getMessage());
  }

  @Test
  void aTokensFileMustBePrivateAndHoldRealTokens() throws IOException {
    Path t = dir.resolve("tokens");
    Files.writeString(t, "0123456789abcdef0123\n");
    Files.setPosixFilePermissions(t, PosixFilePermissions.fromString("rw-r--r--"));
    Map<Key, String> flags = Map.of(Key.AUTH_TOKENS_FILE, t.toString());
    ConfigException open = assertThrows(ConfigException.class, () -> load(null, Map.of(), flags));
    assertEquals(
        "--auth-tokens-file="
            + t
            + ": is readable by group or others (rw-r--r--); run chmod 600 on it",
        open.getMessage());
    Files.setPosixFilePermissions(t, PosixFilePermissions.fromString("rw-------"));
    Files.writeString(t, "# nothing yet\n");
    ConfigException empty = assertThrows(ConfigException.class, () -> load(null, Map.of(), flags));
    assertTrue(empty.getMessage().endsWith("holds no token (one per line, # for comments)"));
    Files.writeString(t, "short\n");
    ConfigException weak = assertThrows(ConfigException.class, () -> load(null, Map.of(), flags));
    assertTrue(weak.getMessage().contains("line 1: a token must be at least 16 characters"));
    assertFalse(weak.getMessage().contains("short"), "the token itself is never echoed");
  }

  @Test
  void everyKeyHasAnEnvironmentVariableAndAFlag() {
    for (Key k : Key.values()) {
      assertTrue(k.env().matches("SLUICE_[A-Z0-9_]+"), k.env());
      assertTrue(k.flag().matches("--[a-z0-9-]+"), k.flag());
      assertFalse(k.meaning().isBlank());
      assertFalse(k.unit().isBlank());
    }
    assertEquals("SLUICE_AUTH_TOKENS_FILE", Key.AUTH_TOKENS_FILE.env());
    assertEquals("--auth-tokens-file", Key.AUTH_TOKENS_FILE.flag());
  }

  @Test
  void peersComeFromTheFileAndFlagsWin() throws IOException {
    Path f =
        yaml(
            "peers: [127.0.0.1:9001, 127.0.0.1:9002+127.0.0.1:9003@2]\n"
                + "node_rank: 1\n"
                + "peer:\n"
                + "  transport: tcp\n"
                + "  timeout_ms: 500\n"
                + "  fetch: always\n");
    DaemonConfig c = load(f, Map.of(), Map.of(Key.PEER_TRANSPORT, "ucx"));
    DaemonConfig.Peers p = c.peers();
    assertTrue(p.enabled());
    assertEquals("127.0.0.1:9001,127.0.0.1:9002+127.0.0.1:9003@2", p.spec());
    assertEquals(1, p.nodeRank());
    assertEquals("ucx", p.transport(), "the flag wins over the file");
    assertEquals(500, p.timeoutMs());
    assertTrue(p.fetchLocal());
    assertEquals("flag --peer-transport", c.source(Key.PEER_TRANSPORT));
    assertTrue(
        c.toYaml().contains("peers: '127.0.0.1:9001,127.0.0.1:9002+127.0.0.1:9003@2'"), c.toYaml());
    assertFalse(load(null, Map.of(), Map.of()).peers().enabled(), "a single node by default");
  }

  @Test
  void badPeerSettingsAreRefusedWithTheKeyAndValue() throws IOException {
    assertTrue(
        refused("peers: 127.0.0.1:9001,127.0.0.1:9002\n")
            .getMessage()
            .contains("--node-rank is needed with a list"));
    assertTrue(
        refused("peers: 127.0.0.1:9001,127.0.0.1:9002\nnode_rank: 2\n")
            .getMessage()
            .contains("node_rank=2"));
    assertTrue(
        refused("peer:\n  transport: rdma\n")
            .getMessage()
            .contains("peer.transport=rdma must be one of auto, ucx, tcp, disni"));
    assertTrue(refused("peer:\n  fetch: never\n").getMessage().contains("peer.fetch=never"));
    ConfigException plaintext = refused("peers: 10.9.0.1:9001,10.9.0.2:9001\nnode_rank: 0\n");
    assertTrue(plaintext.getMessage().contains("insecure: true"), plaintext.getMessage());
    Path ok = yaml("peers: 10.9.0.1:9001,10.9.0.2:9001\nnode_rank: 0\ninsecure: true\n");
    assertEquals(0, load(ok, Map.of(), Map.of()).peers().nodeRank());
  }
}
