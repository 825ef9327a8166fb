package io.sluice.server;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.prometheus.metrics.exporter.httpserver.MetricsHandler;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * The daemon's HTTP side: {@code /metrics} in the Prometheus text format and {@code /healthz} (200
 * {@code ok} while serving, 503 with the reason once the daemon is stopping). One small thread
 * pool; scrapes never touch the data path beyond reading counters.
 */
final class MetricsServer implements AutoCloseable {
  private final HttpServer http;
  private final ExecutorService threads;

  private MetricsServer(HttpServer http, ExecutorService threads) {
    this.http = http;
    this.threads = threads;
  }

  /**
   * Starts listening on {@code host:port} (0: any free port). {@code health} says null while the
   * daemon serves, else why not.
   */
  static MetricsServer start(
      String host, int port, PrometheusRegistry registry, Supplier<String> health)
      throws IOException {
    HttpServer http = HttpServer.create(new InetSocketAddress(host, port), 16);
    ExecutorService threads =
        Executors.newFixedThreadPool(
            2, Thread.ofPlatform().daemon().name("sluice-metrics-", 0).factory());
    http.setExecutor(threads);
    http.createContext("/metrics", new MetricsHandler(registry));
    http.createContext(
        "/healthz",
        exchange -> {
          String down = health.get();
          reply(exchange, down == null ? 200 : 503, down == null ? "ok\n" : down + "\n");
        });
    http.createContext(
        "/",
        exchange ->
            reply(
                exchange,
                exchange.getRequestURI().getPath().equals("/") ? 200 : 404,
                "sluice daemon: /metrics (Prometheus), /healthz\n"));
    http.start();
    return new MetricsServer(http, threads);
  }

  private static void reply(HttpExchange exchange, int status, String body) throws IOException {
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
    exchange.sendResponseHeaders(status, b.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(b);
    }
  }

  /** The port it listens on. */
  int port() {
    return http.getAddress().getPort();
  }

  String host() {
    return http.getAddress().getHostString();
  }

  @Override
  public void close() {
    http.stop(0);
    threads.shutdownNow();
  }
}
