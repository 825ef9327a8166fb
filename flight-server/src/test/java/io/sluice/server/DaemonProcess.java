package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code sluice serve} in its own JVM, as the launcher runs it (the daemon jar, target/lib, the JVM
 * flags), for ITs that need a real process: its own environment, its own memory, signals. The
 * output is kept for failure messages.
 */
final class DaemonProcess implements AutoCloseable {
  private static final Pattern SERVING = Pattern.compile("serving grpc://[^:]+:(\\d+)");

  private final Process process;
  private final int port;
  private final ConcurrentLinkedQueue<String> output;

  private DaemonProcess(Process process, int port, ConcurrentLinkedQueue<String> output) {
    this.process = process;
    this.port = port;
    this.output = output;
  }

  /**
   * Starts {@code serve ARGS} with {@code heapBytes} of heap and {@code env} added to this
   * process's environment, and waits until it serves.
   */
  static DaemonProcess start(long heapBytes, Map<String, String> env, String... serveArgs)
      throws IOException {
    Path module = Path.of("").toAbsolutePath();
    Path jar = module.resolve("target/sluice-flight-server.jar");
    assertTrue(Files.exists(jar), jar + " (built by the package phase)");
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String flag : System.getProperty("sluice.jvm.flags", "").split(" ")) {
      if (!flag.isBlank()) {
        cmd.add(flag);
      }
    }
    cmd.add("-Xmx" + heapBytes);
    cmd.addAll(
        List.of(
            "-cp", jar + ":" + module.resolve("target/lib") + "/*", "io.sluice.cli.SluiceMain"));
    cmd.add("serve");
    cmd.addAll(List.of(serveArgs));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    pb.environment().putAll(env);
    Process p = pb.start();
    ConcurrentLinkedQueue<String> out = new ConcurrentLinkedQueue<>();
    BufferedReader in =
        new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      out.add(line);
      Matcher m = SERVING.matcher(line);
      if (m.find()) {
        // Keep reading, so the pipe never fills and the daemon never blocks on a log line.
        Thread.ofPlatform()
            .daemon()
            .start(
                () -> {
                  try {
                    String l;
                    while ((l = in.readLine()) != null) {
                      out.add(l);
                    }
                  } catch (IOException ignored) {
                    // the daemon went away
                  }
                });
        return new DaemonProcess(p, Integer.parseInt(m.group(1)), out);
      }
    }
    throw new AssertionError("daemon exited before serving:\n" + String.join("\n", out));
  }

  int port() {
    return port;
  }

  String uri() {
    return "grpc://127.0.0.1:" + port;
  }

  long pid() {
    return process.pid();
  }

  /** The daemon's /metrics text; its address is on the serving line ({@code --metrics-port}). */
  String metrics() throws Exception {
    Matcher m = Pattern.compile("metrics=(http://\\S+)").matcher(output());
    assertTrue(m.find(), output());
    try (java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient()) {
      java.net.http.HttpResponse<String> r =
          http.send(
              java.net.http.HttpRequest.newBuilder(java.net.URI.create(m.group(1) + "/metrics"))
                  .build(),
              java.net.http.HttpResponse.BodyHandlers.ofString());
      org.junit.jupiter.api.Assertions.assertEquals(200, r.statusCode());
      return r.body();
    }
  }

  /** The value of {@code series} (name and labels, as exposed) in a /metrics text. */
  static double counter(String metrics, String series) {
    for (String line : metrics.split("\n")) {
      if (line.startsWith(series + " ")) {
        return Double.parseDouble(line.substring(series.length() + 1).trim());
      }
    }
    throw new AssertionError(series + " not in:\n" + metrics);
  }

  /** Everything the daemon printed so far. */
  String output() {
    return String.join("\n", output);
  }

  /** SIGKILL: the daemon dies as on a node failure, nothing flushed or closed. */
  void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor(10, TimeUnit.SECONDS);
  }

  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(15, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }
}
