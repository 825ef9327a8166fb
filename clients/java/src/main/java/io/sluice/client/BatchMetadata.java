package io.sluice.client;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The app_metadata JSON of one batch.
 *
 * @param cursor global samples consumed once every rank has taken this step: what a checkpoint
 *     stores
 * @param padded how many of the last rows of this batch are wrap-around padding (drop_last=false)
 * @param steps batches per rank in this epoch
 * @param shm where the batch lies when {@code delivery} is {@code shm}; null otherwise
 * @param cuda where the batch lies when {@code delivery} is {@code cuda}; null otherwise
 */
public record BatchMetadata(
    long epoch,
    long step,
    long cursor,
    Delivery delivery,
    int padded,
    long steps,
    ShmSlot shm,
    CudaSlot cuda) {

  private static final ObjectMapper JSON = new ObjectMapper();

  public BatchMetadata {
    if ((delivery == Delivery.SHM) != (shm != null)) {
      throw new ProtocolException(
          "shm", "a batch carries a shm descriptor exactly when its delivery is shm");
    }
    if ((delivery == Delivery.CUDA) != (cuda != null)) {
      throw new ProtocolException(
          "cuda", "a batch carries a cuda descriptor exactly when its delivery is cuda");
    }
  }

  /** Metadata of a shm batch, or of one in the stream ({@code shm} null). */
  public BatchMetadata(
      long epoch, long step, long cursor, Delivery delivery, int padded, long steps, ShmSlot shm) {
    this(epoch, step, cursor, delivery, padded, steps, shm, null);
  }

  /** Metadata of a batch sent in the stream itself. */
  public BatchMetadata(
      long epoch, long step, long cursor, Delivery delivery, int padded, long steps) {
    this(epoch, step, cursor, delivery, padded, steps, null, null);
  }

  /**
   * The JSON form. Written by hand: it goes out once per batch, and Jackson's tree cost about 5% of
   * a stream thread.
   */
  public byte[] toJson() {
    StringBuilder b = new StringBuilder(shm == null && cuda == null ? 96 : 320);
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
    if (cuda != null) {
      appendCuda(b, cuda);
    }
    return b.append('}').toString().getBytes(StandardCharsets.UTF_8);
  }

  private static void appendCuda(StringBuilder b, CudaSlot c) {
    b.append(",\"cuda\":{\"control\":\"")
        .append(JsonStringEncoder.getInstance().quoteAsString(c.control()))
        .append("\",\"device\":")
        .append(c.device())
        .append(",\"pool_bytes\":")
        .append(c.poolBytes());
    if (c.handle() != null) {
      b.append(",\"handle\":\"").append(c.handle()).append('"');
    }
    b.append(",\"offset\":")
        .append(c.offset())
        .append(",\"length\":")
        .append(c.length())
        .append(",\"seq\":")
        .append(c.seq())
        .append(",\"layout_version\":")
        .append(ShmLayout.VERSION)
        .append(",\"columns\":[");
    for (int i = 0; i < c.columns().size(); i++) {
      CudaSlot.Column col = c.columns().get(i);
      b.append(i == 0 ? "" : ",")
          .append("{\"name\":\"")
          .append(JsonStringEncoder.getInstance().quoteAsString(col.name()))
          .append("\",\"offset\":")
          .append(col.offset())
          .append(",\"dtype\":\"")
          .append(col.dtype())
          .append("\",\"shape\":[");
      for (int d = 0; d < col.shape().size(); d++) {
        b.append(d == 0 ? "" : ",").append(col.shape().get(d));
      }
      b.append("]}");
    }
    b.append("]}");
  }

  /** Refuses a {@code shm} or {@code cuda} descriptor of another layout version, naming it. */
  private static void checkLayoutVersion(JsonNode descriptor, String name) {
    int version = field(descriptor, "layout_version").intValue();
    if (version != ShmLayout.VERSION) {
      throw new ProtocolException(
          name + ".layout_version",
          name
              + " layout_version="
              + version
              + " is not the one this client reads ("
              + ShmLayout.VERSION
              + ")");
    }
  }

  private static CudaSlot parseCuda(JsonNode c) {
    checkLayoutVersion(c, "cuda");
    List<CudaSlot.Column> columns = new ArrayList<>();
    for (JsonNode col : field(c, "columns")) {
      List<Long> shape = new ArrayList<>();
      for (JsonNode d : field(col, "shape")) {
        shape.add(d.longValue());
      }
      columns.add(
          new CudaSlot.Column(
              field(col, "name").asText(),
              field(col, "offset").longValue(),
              field(col, "dtype").asText(),
              shape));
    }
    JsonNode handle = c.get("handle");
    return new CudaSlot(
        field(c, "control").asText(),
        field(c, "device").intValue(),
        field(c, "pool_bytes").longValue(),
        handle == null || handle.isNull() ? null : handle.asText(),
        field(c, "offset").longValue(),
        field(c, "length").longValue(),
        field(c, "seq").longValue(),
        columns);
  }

  public static BatchMetadata parse(byte[] json) {
    try {
      JsonNode n = JSON.readTree(json);
      JsonNode s = n == null ? null : n.get("shm");
      ShmSlot shm = null;
      if (s != null && !s.isNull()) {
        checkLayoutVersion(s, "shm");
        shm =
            new ShmSlot(
                field(s, "region").asText(),
                field(s, "offset").longValue(),
                field(s, "length").longValue(),
                field(s, "seq").longValue());
      }
      JsonNode c = n.get("cuda");
      return new BatchMetadata(
          field(n, "epoch").longValue(),
          field(n, "step").longValue(),
          field(n, "cursor").longValue(),
          Delivery.parse(field(n, "delivery").asText()),
          field(n, "padded").intValue(),
          field(n, "steps").longValue(),
          shm,
          c == null || c.isNull() ? null : parseCuda(c));
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
