package io.sluice.format;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sluice.planner.DatasetLayout;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Iterator;
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
      if (s.etag() != null) {
        o.put("etag", s.etag());
      }
      if (!s.companions().isEmpty()) {
        ArrayNode cs = o.putArray("companions");
        for (FileStamp c : s.companions()) {
          ObjectNode co =
              cs.addObject()
                  .put("path", c.path())
                  .put("length_bytes", c.lengthBytes())
                  .put("mtime_ms", c.mtimeMs());
          if (c.etag() != null) {
            co.put("etag", c.etag());
          }
        }
      }
    }
    Path tmp = dir.resolve(FILE_NAME + ".tmp");
    try (OutputStream out = Files.newOutputStream(tmp)) {
      JSON.writeValue(out, root);
    }
    Files.move(tmp, dir.resolve(FILE_NAME), StandardCopyOption.ATOMIC_MOVE);
  }

  /** Reads {@code dir/sluice-manifest.json}, naming the file and field on any problem. */
  public static Manifest read(Path dir) {
    Path file = dir.resolve(FILE_NAME);
    JsonNode root;
    try {
      try (InputStream in = Files.newInputStream(file)) {
        root = JSON.readTree(in);
      }
    } catch (NoSuchFileException | java.io.FileNotFoundException e) {
      throw new DatasetFormatException(
          file, -1, "no manifest; run: sluice dataset index " + dir + " --format ...", e);
    } catch (IOException e) {
      throw new DatasetFormatException(
          file, -1, "manifest is not valid JSON: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new DatasetFormatException(file, -1, "manifest must be a JSON object");
    }
    long version = integer(file, root, "version", 0);
    if (version != VERSION) {
      throw new DatasetFormatException(
          file, -1, "manifest version=" + version + " is not supported (expected " + VERSION + ")");
    }
    Map<String, String> params = new TreeMap<>();
    JsonNode p = need(file, root, "params");
    if (!p.isObject()) {
      throw new DatasetFormatException(file, -1, "manifest field 'params' must be an object");
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = p.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      params.put(e.getKey(), text(file, e.getValue(), "params." + e.getKey()));
    }
    JsonNode shardList = need(file, root, "shards");
    if (!shardList.isArray() || shardList.isEmpty()) {
      throw new DatasetFormatException(
          file, -1, "manifest field 'shards' must be a non-empty list");
    }
    List<ShardEntry> shards = new ArrayList<>();
    long total = 0;
    for (JsonNode s : shardList) {
      List<FileStamp> companions = new ArrayList<>();
      JsonNode cs = s.get("companions");
      if (cs != null && !cs.isArray()) {
        throw new DatasetFormatException(file, -1, "manifest field 'companions' must be a list");
      }
      if (cs != null) {
        for (JsonNode c : cs) {
          companions.add(
              new FileStamp(
                  relativePath(file, c),
                  integer(file, c, "length_bytes", 0),
                  integer(file, c, "mtime_ms", Long.MIN_VALUE),
                  etag(file, c)));
        }
      }
      ShardEntry e =
          new ShardEntry(
              relativePath(file, s),
              integer(file, s, "samples", 0),
              integer(file, s, "length_bytes", 0),
              integer(file, s, "mtime_ms", Long.MIN_VALUE),
              etag(file, s),
              companions);
      total += e.samples();
      if (total < 0 || total > DatasetLayout.MAX_SAMPLES) {
        throw new DatasetFormatException(
            file, -1, "manifest sample counts add up past " + DatasetLayout.MAX_SAMPLES);
      }
      shards.add(e);
    }
    if (total == 0) {
      throw new DatasetFormatException(file, -1, "manifest lists no samples");
    }
    return new Manifest(text(file, need(file, root, "format"), "format"), params, shards);
  }

  /** The optional ETag of an object-store shard or companion. */
  private static String etag(Path file, JsonNode node) {
    JsonNode e = node.get("etag");
    return e == null ? null : text(file, e, "etag");
  }

  /** A shard or companion path: relative, inside the dataset folder. */
  private static String relativePath(Path file, JsonNode node) {
    String path = text(file, need(file, node, "path"), "path");
    Path p;
    try {
      p = Path.of(path);
    } catch (java.nio.file.InvalidPathException e) {
      throw new DatasetFormatException(file, -1, "manifest path '" + path + "' is not a path", e);
    }
    if (path.isEmpty()
        || p.isAbsolute()
        || p.normalize().startsWith("..")
        || p.getNameCount() != 1) {
      throw new DatasetFormatException(
          file, -1, "manifest path '" + path + "' must be a file name inside the dataset folder");
    }
    return path;
  }

  private static String text(Path file, JsonNode v, String key) {
    if (!v.isTextual()) {
      throw new DatasetFormatException(
          file, -1, "manifest field '" + key + "'=" + v + " must be a string");
    }
    return v.asText();
  }

  private static long integer(Path file, JsonNode node, String key, long min) {
    JsonNode v = need(file, node, key);
    if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < min) {
      throw new DatasetFormatException(
          file,
          -1,
          "manifest field '"
              + key
              + "'="
              + v
              + " must be an integer >= "
              + (min == Long.MIN_VALUE ? "-2^63" : min));
    }
    return v.longValue();
  }

  private static JsonNode need(Path file, JsonNode node, String key) {
    JsonNode v = node == null || !node.isObject() ? null : node.get(key);
    if (v == null || v.isNull()) {
      throw new DatasetFormatException(file, -1, "manifest field '" + key + "' is missing");
    }
    return v;
  }
}
