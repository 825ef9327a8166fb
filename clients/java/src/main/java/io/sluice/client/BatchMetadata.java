package io.sluice.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * The app_metadata JSON of one batch.
 *
 * @param cursor global samples consumed once every rank has taken this step: what a checkpoint
 *     stores
 * @param padded how many of the last rows of this batch are wrap-around padding (drop_last=false)
 * @param steps batches per rank in this epoch
 */
public record BatchMetadata(
    long epoch, long step, long cursor, Delivery delivery, int padded, long steps) {

  private static final ObjectMapper JSON = new ObjectMapper();

  public byte[] toJson() {
    ObjectNode o = JSON.createObjectNode();
    o.put("epoch", epoch);
    o.put("step", step);
    o.put("cursor", cursor);
    o.put("delivery", delivery.wireName());
    o.put("padded", padded);
    o.put("steps", steps);
    return o.toString().getBytes(StandardCharsets.UTF_8);
  }

  public static BatchMetadata parse(byte[] json) {
    try {
      JsonNode n = JSON.readTree(json);
      return new BatchMetadata(
          field(n, "epoch").longValue(),
          field(n, "step").longValue(),
          field(n, "cursor").longValue(),
          Delivery.parse(field(n, "delivery").asText()),
          field(n, "padded").intValue(),
          field(n, "steps").longValue());
    } catch (IOException e) {
      throw new ProtocolException("app_metadata", "app_metadata is not valid JSON", e);
    }
  }

  private static JsonNode field(JsonNode n, String key) {
    JsonNode v = n == null ? null : n.get(key);
    if (v == null || v.isNull()) {
      throw new ProtocolException(key, "app_metadata lacks '" + key + "'");
    }
    return v;
  }
}
