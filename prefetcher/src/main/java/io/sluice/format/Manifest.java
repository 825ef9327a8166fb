package io.sluice.format;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.planner.DatasetLayout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code sluice-manifest.json}: the shards of a dataset in sample-id order, with the format and its
 * parameters. Written atomically beside the data by {@code sluice dataset index}.
 *
 * @param params format parameters (for tokens: dtype, seq_len)
 */
public record Manifest(String format, Map<String, String> params, List<ShardEntry> shards) {
  public static final String FILE_NAME = "sluice-manifest.json";
  public static final int VERSION = 1;

  private static final ObjectMapper JSON =
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  public Manifest {
    params = Map.copyOf(params);
    shards = List.copyOf(shards);
  }

  public long totalSamples() {
    long n = 0;
    for (ShardEntry s : shards) {
      n += s.samples();
    }
    return n;
  }

  public long totalBytes() {
    long n = 0;
    for (ShardEntry s : shards) {
      n += s.lengthBytes();
    }
    return n;
  }

  /** The planner's view: shard sample counts in order. */
  public DatasetLayout layout() {
    long[] counts = new long[shards.size()];
    for (int i = 0; i < counts.length; i++) {
      counts[i] = shards.get(i).samples();
    }
    return DatasetLayout.ofShards(counts);
  }

  /** True when {@code dir} already holds a readable manifest equal to {@code fresh}. */
  public static boolean sameAsOnDisk(Path dir, Manifest fresh) {
    if (!Files.exists(dir.resolve(FILE_NAME))) {
      return false;
    }
    try {
      return read(dir).equals(fresh);
    } catch (DatasetFormatException e) {
      return false; // a damaged old manifest is simply replaced
    }
  }

  /** Fails naming the file if any shard or companion changed since indexing. */
  public void checkUnchanged(Path dir) throws IOException {
    for (ShardEntry s : shards) {
      s.checkUnchanged(dir);
    }
  }

  public String param(String key) {
    String v = params.get(key);
    if (v == null) {
      throw new IllegalStateException("manifest lacks parameter " + key);
    }
    return v;
  }

  /** Writes {@code dir/sluice-manifest.json} through a temporary file and an atomic rename. */
  public void write(Path dir) throws IOException {
    ObjectNode root = JSON.createObjectNode();
    root.put("version", VERSION);
    root.put("format", format);
    ObjectNode p = root.putObject("params");
    new TreeMap<>(params).forEach(p::put);
    root.put("total_samples", totalSamples());
    root.put("total_bytes", totalBytes());
    ArrayNode arr = root.putArray("shards");
    for (ShardEntry s : shards) {
      ObjectNode o = arr.addObject();
      o.put("path", s.path());
      o.put("samples", s.samples());
      o.put("length_bytes", s.lengthBytes());
      o.put("mtime_ms", s.mtimeMs());
      if (!s.companions().isEmpty()) {
        ArrayNode cs = o.putArray("companions");
        for (FileStamp c : s.companions()) {
          cs.addObject()
              .put("path", c.path())
              .put("length_bytes", c.lengthBytes())
              .put("mtime_ms", c.mtimeMs());
        }
      }
    }
    Path tmp = dir.resolve(FILE_NAME + ".tmp");
    JSON.writeValue(tmp.toFile(), root);
    Files.move(tmp, dir.resolve(FILE_NAME), StandardCopyOption.ATOMIC_MOVE);
  }

  /** Reads {@code dir/sluice-manifest.json}, naming the file and field on any problem. */
  public static Manifest read(Path dir) {
    Path file = dir.resolve(FILE_NAME);
    JsonNode root;
    try {
      root = JSON.readTree(file.toFile());
    } catch (NoSuchFileException | java.io.FileNotFoundException e) {
      throw new DatasetFormatException(
          file, -1, "no manifest; run: sluice dataset index " + dir + " --format ...", e);
    } catch (IOException e) {
      throw new DatasetFormatException(
          file, -1, "manifest is not valid JSON: " + e.getMessage(), e);
    }
    int version = need(file, root, "version").asInt();
    if (version != VERSION) {
      throw new DatasetFormatException(
          file, -1, "manifest version=" + version + " is not supported (expected " + VERSION + ")");
    }
    Map<String, String> params = new TreeMap<>();
    need(file, root, "params")
        .fields()
        .forEachRemaining(e -> params.put(e.getKey(), e.getValue().asText()));
    List<ShardEntry> shards = new ArrayList<>();
    for (JsonNode s : need(file, root, "shards")) {
      List<FileStamp> companions = new ArrayList<>();
      JsonNode cs = s.get("companions");
      if (cs != null) {
        for (JsonNode c : cs) {
          companions.add(
              new FileStamp(
                  need(file, c, "path").asText(),
                  need(file, c, "length_bytes").asLong(),
                  need(file, c, "mtime_ms").asLong()));
        }
      }
      shards.add(
          new ShardEntry(
              need(file, s, "path").asText(),
              need(file, s, "samples").asLong(),
              need(file, s, "length_bytes").asLong(),
              need(file, s, "mtime_ms").asLong(),
              companions));
    }
    return new Manifest(need(file, root, "format").asText(), params, shards);
  }

  private static JsonNode need(Path file, JsonNode node, String key) {
    JsonNode v = node.get(key);
    if (v == null || v.isNull()) {
      throw new DatasetFormatException(file, -1, "manifest field '" + key + "' is missing");
    }
    return v;
  }
}
