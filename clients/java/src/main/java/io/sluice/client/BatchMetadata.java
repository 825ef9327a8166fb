package io.sluice.client;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * The app_metadata JSON of one batch.
 *
 * @param cursor global samples consumed once every rank has taken this step: what a checkpoint
 *     stores
 * @param padded how many of the last rows of this batch are wrap-around padding (drop_last=false)
 * @param steps batches per rank in this epoch
 * @param shm where the batch lies when {@code delivery} is {@code shm}; null otherwise
 */
public record BatchMetadata(
    long epoch, long step, long cursor, Delivery delivery, int padded, long steps, ShmSlot shm) {

  private static final ObjectMapper JSON = new ObjectMapper();

  public BatchMetadata {
    if ((delivery == Delivery.SHM) != (shm != null)) {
      throw new ProtocolException(
          "shm", "a batch carries a shm descriptor exactly when its delivery is shm");
    }
  }

  /** Metadata of a batch sent in the stream itself. */
  public BatchMetadata(
      long epoch, long step, long cursor, Delivery delivery, int padded, long steps) {
    this(epoch, step, cursor, delivery, padded, steps, null);
  }

  /**
   * The JSON form. Written by hand: it goes out once per batch, and Jackson's tree cost about 5% of
   * a stream thread.
   */
  public byte[] toJson() {
    StringBuilder b = new StringBuilder(shm == null ? 96 : 224);
    b.append("{\"epoch\":")
        .append(epoch)
        .append(",\"step\":")
        .append(step)
        .append(",\"cursor\":")
        .append(cursor)
        .append(",\"delivery\":\"")
        .append(delivery.wireName())
        .append("\",\"padded\":")
        .append(padded)
        .append(",\"steps\":")
        .append(steps);
    if (shm != null) {
      b.append(",\"shm\":{\"region\":\"")
          .append(JsonStringEncoder.getInstance().quoteAsString(shm.region()))
          .append("\",\"offset\":")
          .append(shm.offset())
          .append(",\"length\":")
          .append(shm.length())
          .append(",\"seq\":")
          .append(shm.seq())
          .append(",\"layout_version\":")
          .append(ShmLayout.VERSION)
          .append('}');
    }
    return b.append('}').toString().getBytes(StandardCharsets.UTF_8);
  }

  public static BatchMetadata parse(byte[] json) {
    try {
      JsonNode n = JSON.readTree(json);
      JsonNode s = n == null ? null : n.get("shm");
      ShmSlot shm = null;
      if (s != null && !s.isNull()) {
        int version = field(s, "layout_version").intValue();
        if (version != ShmLayout.VERSION) {
          throw new ProtocolException(
              "shm.layout_version",
              "shm layout_version="
                  + version
                  + " is not the one this client reads ("
                  + ShmLayout.VERSION
                  + ")");
        }
        shm =
            new ShmSlot(
                field(s, "region").asText(),
                field(s, "offset").longValue(),
                field(s, "length").longValue(),
                field(s, "seq").longValue());
      }
      return new BatchMetadata(
          field(n, "epoch").longValue(),
          field(n, "step").longValue(),
          field(n, "cursor").longValue(),
          Delivery.parse(field(n, "delivery").asText()),
          field(n, "padded").intValue(),
          field(n, "steps").longValue(),
          shm);
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
