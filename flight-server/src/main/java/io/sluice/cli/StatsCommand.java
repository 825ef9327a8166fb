package io.sluice.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.sluice.client.SluiceClient;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code sluice stats}: a running daemon's metrics and read-ahead jobs, as a table. */
@Command(
    name = "stats",
    mixinStandardHelpOptions = true,
    description = {
      "Print a running daemon's metrics (the series its Prometheus endpoint serves) and its"
          + " read-ahead jobs, through the Flight stats action."
    })
final class StatsCommand implements Callable<Integer> {
  @Spec picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = "--json", description = "Print the stats action's JSON as it came.")
  boolean json;

  @Mixin DaemonConnection daemon;

  @Override
  public Integer call() throws Exception {
    JsonNode stats;
    try (RootAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceClient c = daemon.connect(alloc)) {
      stats = c.stats();
    }
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      out.println(stats.toPrettyString());
      out.flush();
      return 0;
    }
    out.println("sluice stats " + daemon.server);
    List<String[]> rows = new ArrayList<>();
    rows.add(new String[] {"metric", "labels", "value"});
    for (JsonNode m : stats.path("metrics")) {
      List<String> labels = new ArrayList<>();
      for (Iterator<Map.Entry<String, JsonNode>> it = m.path("labels").fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> l = it.next();
        labels.add(l.getKey() + "=" + l.getValue().asText());
      }
      rows.add(
          new String[] {m.path("name").asText(), String.join(" ", labels), value(m.path("value"))});
    }
    int[] width = new int[3];
    for (String[] r : rows) {
      for (int i = 0; i < 3; i++) {
        width[i] = Math.max(width[i], r[i].length());
      }
    }
    for (String[] r : rows) {
      out.printf(
          Locale.ROOT,
          "%-" + width[0] + "s  %-" + width[1] + "s  %" + width[2] + "s%n",
          r[0],
          r[1],
          r[2]);
    }
    JsonNode jobs = stats.path("jobs");
    out.println();
    out.println("read-ahead jobs: " + jobs.size());
    for (JsonNode j : jobs) {
      JsonNode k = j.path("key");
      JsonNode p = j.path("prefetch");
      JsonNode cache = j.path("cache");
      out.printf(
          Locale.ROOT,
          "  %s seed=%d shuffle=%s world=%d batch=%d: %d streams, %d reads (%.1f MiB),"
              + " cache %.1f/%.1f MiB%n",
          k.path("dataset").asText(),
          k.path("seed").asLong(),
          k.path("shuffle").asText(),
          k.path("world_size").asInt(),
          k.path("batch_size").asInt(),
          j.path("streams").size(),
          p.path("reads").asLong(),
          p.path("bytes_read").asLong() / 1048576.0,
          cache.path("used_bytes").asLong() / 1048576.0,
          cache.path("budget_bytes").asLong() / 1048576.0);
    }
    out.flush();
    return 0;
  }

  private static String value(JsonNode v) {
    double d = v.asDouble();
    if (d == Math.rint(d) && Math.abs(d) < 1e15) {
      return Long.toString((long) d);
    }
    return String.format(Locale.ROOT, "%.3f", d);
  }
}
