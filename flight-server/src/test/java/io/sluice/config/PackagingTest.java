package io.sluice.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.sluice.config.DaemonConfig.Key;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What packaging/ ships is what the daemon accepts: the example config, the unit, the DaemonSet.
 */
class PackagingTest {
  static final Path REPO = Path.of(System.getProperty("user.dir")).getParent();

  @Test
  void theExampleConfigLoads() {
    DaemonConfig c =
        ConfigLoader.load(REPO.resolve("packaging/sluice.yaml"), Map.of(), Map.of(), List.of());
    assertEquals(9815, c.metricsPort());
    assertEquals(64L << 30, c.memoryBudgetBytes());
    assertEquals(1, c.datasets().size());
  }

  @Test
  void theDaemonSetsConfigLoadsWithItsSecretsMounted(@TempDir Path tmp) throws Exception {
    JsonNode configMap = null;
    try (MappingIterator<JsonNode> docs =
        new YAMLMapper()
            .readerFor(JsonNode.class)
            .readValues(REPO.resolve("packaging/kubernetes/sluice-daemonset.yaml").toFile())) {
      for (JsonNode doc : docs.readAll()) {
        if (doc.path("kind").asText().equals("ConfigMap")) {
          configMap = doc;
        }
        if (doc.path("kind").asText().equals("DaemonSet")) {
          JsonNode c = doc.path("spec").path("template").path("spec").path("containers").get(0);
          assertEquals("/healthz", c.path("readinessProbe").path("httpGet").path("path").asText());
        }
      }
    }
    String embedded = configMap.path("data").path("sluice.yaml").asText();
    // Where the pod mounts its secrets, this test puts files of its own.
    Path tls = Files.createDirectories(tmp.resolve("tls"));
    Files.writeString(tls.resolve("tls.crt"), "cert");
    Files.writeString(tls.resolve("tls.key"), "key");
    Path auth = Files.createDirectories(tmp.resolve("auth"));
    Path tokens = Files.writeString(auth.resolve("tokens"), "0123456789abcdef0123456789abcdef\n");
    Files.setPosixFilePermissions(tokens, PosixFilePermissions.fromString("r--------"));
    Path cfg = tmp.resolve("sluice.yaml");
    Files.writeString(
        cfg,
        embedded.replace("/etc/sluice/tls/", tls + "/").replace("/etc/sluice/auth/", auth + "/"));
    DaemonConfig c = ConfigLoader.load(cfg, Map.of(), Map.of(), List.of());
    assertTrue(c.tls());
    assertEquals(1, c.tokens().count());
    assertEquals("0.0.0.0", c.host());
  }

  @Test
  void theSystemdUnitVerifies(@TempDir Path tmp) throws Exception {
    Path unit = REPO.resolve("packaging/systemd/sluice.service");
    String text = Files.readString(unit);
    assertTrue(text.contains("Type=notify"), "readiness through sd_notify");
    assertTrue(text.contains("Environment=SLUICE_CONFIG=/etc/sluice/sluice.yaml"));
    boolean hasAnalyze =
        Files.isExecutable(Path.of("/usr/bin/systemd-analyze"))
            || Files.isExecutable(Path.of("/bin/systemd-analyze"));
    Assumptions.assumeTrue(
        hasAnalyze, "systemd-analyze is not installed here: the unit is not verified");
    // The unit names /opt/sluice/sluice; verify checks that ExecStart exists, so point it at
    // this checkout's launcher.
    Path copy = tmp.resolve("sluice.service");
    Files.writeString(
        copy, text.replace("ExecStart=/opt/sluice/sluice", "ExecStart=" + REPO.resolve("sluice")));
    Process p =
        new ProcessBuilder("systemd-analyze", "verify", copy.toString())
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes());
    int rc = p.waitFor();
    // verify exits 0 on some mistakes (an unknown Type= value is "ignored"): any output fails.
    assertEquals(0, rc, out);
    assertEquals("", out.strip(), "systemd-analyze verify said something");
  }

  @Test
  void operationsDocListsEveryOption() throws Exception {
    String doc = Files.readString(REPO.resolve("docs/operations.md"));
    for (Key k : Key.values()) {
      assertTrue(
          doc.contains("`" + k.yamlName() + "`"), "docs/operations.md lacks " + k.yamlName());
      assertTrue(doc.contains("`" + k.env() + "`"), "docs/operations.md lacks " + k.env());
    }
  }
}
