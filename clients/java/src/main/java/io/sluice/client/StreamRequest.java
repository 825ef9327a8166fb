package io.sluice.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One rank's request for one epoch: the JSON held in {@code FlightDescriptor.command} and in the
 * ticket. Parsing rejects unknown keys, wrong types and out-of-range values, naming the field.
 *
 * @param columns the columns to return, or {@code null} for all
 * @param shmToken the token read from the daemon's shm probe file ({@link
 *     Protocol#SHM_PROBE_ACTION}): proof that this client shares the daemon's host and can map its
 *     shared memory; {@code null} when the client cannot or does not want to
 * @param device the GPU (CUDA device index on the daemon's host) the client wants its batches on,
 *     or -1 for none: {@code cuda} delivery uses it (0 when -1), {@code auto} takes {@code cuda}
 *     only when it is set
 */
public record StreamRequest(
    String dataset,
    int rank,
    int worldSize,
    int batchSize,
    long seed,
    long epoch,
    String shuffle,
    boolean dropLast,
    long startCursor,
    Delivery delivery,
    List<String> columns,
    String shmToken,
    int device) {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Set<String> KEYS =
      Set.of(
          "dataset",
          "rank",
          "world_size",
          "batch_size",
          "seed",
          "epoch",
          "shuffle",
          "drop_last",
          "start_cursor",
          "delivery",
          "columns",
          "shm_token",
          "device");
  private static final Set<String> SHUFFLES = Set.of("global", "block", "shard", "none");

  public StreamRequest {
    require(dataset != null && !dataset.isEmpty(), "dataset", "dataset must be a non-empty string");
    require(worldSize >= 1, "world_size", "world_size=" + worldSize + " must be >= 1");
    require(
        rank >= 0 && rank < worldSize,
        "rank",
        "rank=" + rank + " must be in [0, world_size=" + worldSize + ")");
    require(batchSize >= 1, "batch_size", "batch_size=" + batchSize + " must be >= 1");
    require(epoch >= 0, "epoch", "epoch=" + epoch + " must be >= 0");
    require(startCursor >= 0, "start_cursor", "start_cursor=" + startCursor + " must be >= 0");
    require(
        shuffle != null && SHUFFLES.contains(shuffle),
        "shuffle",
        "shuffle=" + shuffle + " must be one of global, block, shard, none");
    require(delivery != null, "delivery", "delivery must be one of cpu, shm, cuda, auto");
    require(device >= -1, "device", "device=" + device + " must be >= 0");
    columns = columns == null ? null : List.copyOf(columns);
  }

  /** This request carrying {@code token} from the daemon's shm probe. */
  public StreamRequest withShmToken(String token) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        seed,
        epoch,
        shuffle,
        dropLast,
        startCursor,
        delivery,
        columns,
        token,
        device);
  }

  /** A request with the protocol's defaults for everything but the four required fields. */
  public static StreamRequest of(String dataset, int rank, int worldSize, int batchSize) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        0,
        0,
        "global",
        false,
        0,
        Delivery.CPU,
        null,
        null,
        -1);
  }

  public StreamRequest withRank(int newRank) {
    return new StreamRequest(
        dataset,
        newRank,
        worldSize,
        batchSize,
        seed,
        epoch,
        shuffle,
        dropLast,
        startCursor,
        delivery,
        columns,
        shmToken,
        device);
  }

  public StreamRequest withSeed(long newSeed) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        newSeed,
        epoch,
        shuffle,
        dropLast,
        startCursor,
        delivery,
        columns,
        shmToken,
        device);
  }

  public StreamRequest withEpoch(long newEpoch) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        seed,
        newEpoch,
        shuffle,
        dropLast,
        startCursor,
        delivery,
        columns,
        shmToken,
        device);
  }

  public StreamRequest withShuffle(String newShuffle) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        seed,
        epoch,
        newShuffle,
        dropLast,
        startCursor,
        delivery,
        columns,
        shmToken,
        device);
  }

  public StreamRequest withDropLast(boolean newDropLast) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        seed,
        epoch,
        shuffle,
        newDropLast,
        startCursor,
        delivery,
        columns,
        shmToken,
        device);
  }

  public StreamRequest withStartCursor(long cursor) {
    return new StreamRequest(
        dataset, rank, worldSize, batchSize, seed, epoch, shuffle, dropLast, cursor, delivery,
        columns, shmToken, device);
  }

  public StreamRequest withDelivery(Delivery newDelivery) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        seed,
        epoch,
        shuffle,
        dropLast,
        startCursor,
        newDelivery,
        columns,
        shmToken,
        device);
  }

  /** This request asking for its batches on GPU {@code newDevice} (-1: none). */
  public StreamRequest withDevice(int newDevice) {
    return new StreamRequest(
        dataset,
        rank,
        worldSize,
        batchSize,
        seed,
        epoch,
        shuffle,
        dropLast,
        startCursor,
        delivery,
        columns,
        shmToken,
        newDevice);
  }

  /** The GPU {@code cuda} delivery puts the batches on: {@link #device()}, or 0 when unset. */
  public int cudaDevice() {
    return Math.max(0, device);
  }

  /** World size times batch size: the samples one step consumes across all ranks. */
  public long globalBatch() {
    return (long) worldSize * batchSize;
  }

  /** The JSON form, with every key present. */
  public byte[] toJson() {
    ObjectNode o = JSON.createObjectNode();
    o.put("dataset", dataset);
    o.put("rank", rank);
    o.put("world_size", worldSize);
    o.put("batch_size", batchSize);
    o.put("seed", seed);
    o.put("epoch", epoch);
    o.put("shuffle", shuffle);
    o.put("drop_last", dropLast);
    o.put("start_cursor", startCursor);
    o.put("delivery", delivery.wireName());
    if (columns == null) {
      o.putNull("columns");
    } else {
      ArrayNode a = o.putArray("columns");
      columns.forEach(a::add);
    }
    if (shmToken != null) {
      o.put("shm_token", shmToken);
    }
    if (device >= 0) {
      o.put("device", device);
    }
    return o.toString().getBytes(StandardCharsets.UTF_8);
  }

  /** Parses descriptor JSON; any problem is a {@link ProtocolException} naming the field. */
  public static StreamRequest parse(byte[] json) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new ProtocolException(
          "json", "request (descriptor or ticket) is not valid JSON: " + e.getOriginalMessage(), e);
    } catch (java.io.IOException e) {
      throw new ProtocolException("json", "descriptor could not be read: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new ProtocolException("json", "request (descriptor or ticket) must be a JSON object");
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      String key = it.next().getKey();
      if (!KEYS.contains(key)) {
        throw new ProtocolException(
            key,
            "unknown descriptor key '"
                + key
                + "' (known: "
                + String.join(", ", sortedKeys())
                + ")");
      }
    }
    return new StreamRequest(
        requiredText(root, "dataset"),
        intField(root, "rank", null),
        intField(root, "world_size", null),
        intField(root, "batch_size", null),
        longField(root, "seed", 0L),
        longField(root, "epoch", 0L),
        textField(root, "shuffle", "global"),
        boolField(root, "drop_last", false),
        longField(root, "start_cursor", 0L),
        Delivery.parse(textField(root, "delivery", "cpu")),
        columnsField(root),
        textField(root, "shm_token", null),
        deviceField(root));
  }

  private static int deviceField(JsonNode root) {
    JsonNode n = root.get("device");
    if (n == null || n.isNull()) {
      return -1;
    }
    int d = intField(root, "device", null);
    if (d < 0) {
      throw new ProtocolException("device", "device=" + d + " must be >= 0");
    }
    return d;
  }

  private static List<String> sortedKeys() {
    List<String> keys = new ArrayList<>(KEYS);
    keys.sort(null);
    return keys;
  }

  private static void require(boolean ok, String field, String message) {
    if (!ok) {
      throw new ProtocolException(field, message);
    }
  }

  private static String requiredText(JsonNode root, String key) {
    JsonNode n = root.get(key);
    if (n == null || n.isNull()) {
      throw new ProtocolException(key, key + " is required");
    }
    if (!n.isTextual()) {
      throw new ProtocolException(key, key + "=" + n + " must be a string");
    }
    return n.asText();
  }

  private static String textField(JsonNode root, String key, String dflt) {
    JsonNode n = root.get(key);
    if (n == null || n.isNull()) {
      return dflt;
    }
    if (!n.isTextual()) {
      throw new ProtocolException(key, key + "=" + n + " must be a string");
    }
    return n.asText();
  }

  private static long longField(JsonNode root, String key, Long dflt) {
    JsonNode n = root.get(key);
    if (n == null || n.isNull()) {
      if (dflt == null) {
        throw new ProtocolException(key, key + " is required");
      }
      return dflt;
    }
    if (!n.isIntegralNumber()) {
      throw new ProtocolException(key, key + "=" + n + " must be an integer");
    }
    if (!n.canConvertToLong()) {
      throw new ProtocolException(
          key, key + "=" + n + " is out of range (must fit a signed 64-bit integer)");
    }
    return n.longValue();
  }

  private static int intField(JsonNode root, String key, Integer dflt) {
    long v = longField(root, key, dflt == null ? null : dflt.longValue());
    if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
      throw new ProtocolException(key, key + "=" + v + " is out of range");
    }
    return (int) v;
  }

  private static boolean boolField(JsonNode root, String key, boolean dflt) {
    JsonNode n = root.get(key);
    if (n == null || n.isNull()) {
      return dflt;
    }
    if (!n.isBoolean()) {
      throw new ProtocolException(key, key + "=" + n + " must be true or false");
    }
    return n.booleanValue();
  }

  private static List<String> columnsField(JsonNode root) {
    JsonNode n = root.get("columns");
    if (n == null || n.isNull()) {
      return null;
    }
    if (!n.isArray()) {
      throw new ProtocolException("columns", "columns=" + n + " must be a list of column names");
    }
    List<String> out = new ArrayList<>();
    for (JsonNode c : n) {
      if (!c.isTextual()) {
        throw new ProtocolException("columns", "columns entry " + c + " must be a string");
      }
      if (out.contains(c.asText())) {
        throw new ProtocolException("columns", "columns entry '" + c.asText() + "' is repeated");
      }
      out.add(c.asText());
    }
    return out;
  }
}
