package io.sluice.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class StreamRequestTest {
  private static StreamRequest parse(String json) {
    return StreamRequest.parse(json.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void defaultsApplyToOptionalKeys() {
    StreamRequest r = parse("{\"dataset\":\"d\",\"rank\":1,\"world_size\":4,\"batch_size\":8}");
    assertEquals("d", r.dataset());
    assertEquals(1, r.rank());
    assertEquals(4, r.worldSize());
    assertEquals(8, r.batchSize());
    assertEquals(0, r.seed());
    assertEquals(0, r.epoch());
    assertEquals("global", r.shuffle());
    assertEquals(false, r.dropLast());
    assertEquals(0, r.startCursor());
    assertEquals(Delivery.CPU, r.delivery());
    assertNull(r.columns());
    assertEquals(32, r.globalBatch());
  }

  @Test
  void roundTripsThroughJson() {
    StreamRequest r =
        new StreamRequest(
            "t", 2, 3, 5, -7, 9, "block", true, 45, Delivery.AUTO, List.of("tokens"), null, 3);
    assertEquals(r, StreamRequest.parse(r.toJson()));
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"bogus\":1}|bogus|unknown descriptor key 'bogus'",
        "{\"dataset\":\"d\",\"rank\":2,\"world_size\":2,\"batch_size\":1}|rank|rank=2 must be in [0, world_size=2)",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":0,\"batch_size\":1}|world_size|world_size=0 must be >= 1",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":0}|batch_size|batch_size=0 must be >= 1",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1}|batch_size|batch_size is required",
        "{\"rank\":0,\"world_size\":1,\"batch_size\":1}|dataset|dataset is required",
        "{\"dataset\":\"d\",\"rank\":\"0\",\"world_size\":1,\"batch_size\":1}|rank|rank=\"0\" must be an integer",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"shuffle\":\"random\"}|shuffle|shuffle=random must be one of",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"delivery\":\"gpu\"}|delivery|delivery=gpu must be one of",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"drop_last\":1}|drop_last|drop_last=1 must be true or false",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"start_cursor\":-4}|start_cursor|start_cursor=-4 must be >= 0",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"columns\":\"tokens\"}|columns|must be a list",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":99999999999,\"batch_size\":1}|world_size|out of range",
        "[1,2]|json|must be a JSON object",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"seed\":18446744073709551615}|seed|out of range",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"columns\":[\"a\",\"a\"]}|columns|repeated",
        "{\"dataset\":|json|not valid JSON",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"device\":-1}|device|device=-1 must be >= 0",
        "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":1,\"device\":\"cuda:0\"}|device|must be an integer",
      })
  void badRequestsNameTheField(String json, String field, String messagePart) {
    ProtocolException e = assertThrows(ProtocolException.class, () -> parse(json));
    assertEquals(field, e.field());
    assertTrue(
        e.getMessage().contains(messagePart),
        () -> "message '" + e.getMessage() + "' lacks '" + messagePart + "'");
  }

  @Test
  void shmTokenIsAnOptionalKeyThatRoundTrips() {
    StreamRequest r = StreamRequest.of("d", 0, 1, 4).withDelivery(Delivery.AUTO);
    assertEquals(null, StreamRequest.parse(r.toJson()).shmToken());
    StreamRequest t = r.withShmToken("abc123");
    assertEquals(t, StreamRequest.parse(t.toJson()));
    assertEquals("abc123", t.withRank(0).withStartCursor(4).shmToken());
    ProtocolException e =
        assertThrows(
            ProtocolException.class,
            () ->
                StreamRequest.parse(
                    "{\"dataset\":\"d\",\"rank\":0,\"world_size\":1,\"batch_size\":4,\"shm_token\":7}"
                        .getBytes(StandardCharsets.UTF_8)));
    assertEquals("shm_token", e.field());
  }

  @Test
  void deviceIsAnOptionalKeyThatRoundTrips() {
    StreamRequest r = StreamRequest.of("d", 0, 1, 4).withDelivery(Delivery.CUDA);
    assertEquals(-1, StreamRequest.parse(r.toJson()).device());
    assertEquals(0, r.cudaDevice(), "cuda without a device takes GPU 0");
    StreamRequest d = r.withDevice(2);
    assertEquals(d, StreamRequest.parse(d.toJson()));
    assertEquals(2, d.withShmToken("t").withEpoch(3).cudaDevice());
  }

  @Test
  void metadataRoundTrips() {
    BatchMetadata m = new BatchMetadata(3, 17, 4096, Delivery.CPU, 2, 40);
    assertEquals(m, BatchMetadata.parse(m.toJson()));
    BatchMetadata shm =
        new BatchMetadata(
            3, 17, 4096, Delivery.SHM, 2, 40, new ShmSlot("/dev/shm/x/s1", 8192, 640, 5));
    assertEquals(shm, BatchMetadata.parse(shm.toJson()));
    BatchMetadata odd =
        new BatchMetadata(
            0, 0, 0, Delivery.SHM, 0, 1, new ShmSlot("/dev/shm/a \"b\\c\u00e9\n", 4096, 1, 0));
    assertEquals(odd, BatchMetadata.parse(odd.toJson()), "a region path is escaped");
    assertThrows(
        ProtocolException.class, () -> new BatchMetadata(3, 17, 4096, Delivery.SHM, 2, 40));
    String otherLayout =
        new String(shm.toJson(), StandardCharsets.UTF_8)
            .replace("\"layout_version\":1", "\"layout_version\":2");
    ProtocolException v =
        assertThrows(
            ProtocolException.class,
            () -> BatchMetadata.parse(otherLayout.getBytes(StandardCharsets.UTF_8)));
    assertEquals("shm.layout_version", v.field());
    ProtocolException e =
        assertThrows(
            ProtocolException.class,
            () -> BatchMetadata.parse("{\"epoch\":1}".getBytes(StandardCharsets.UTF_8)));
    assertEquals("step", e.field());
  }

  @Test
  void cudaMetadataRoundTripsAndIsChecked() {
    String handle = java.util.Base64.getEncoder().encodeToString(new byte[CudaSlot.HANDLE_BYTES]);
    List<CudaSlot.Column> columns =
        List.of(
            new CudaSlot.Column("sample_id", 1 << 20, "uint64", List.of(64L)),
            new CudaSlot.Column("tokens", (1 << 20) + 512, "uint16", List.of(64L, 2048L)));
    CudaSlot first =
        new CudaSlot("/dev/shm/x/c1-t-r0", 0, 8 << 20, handle, 1 << 20, 262656, 0, columns);
    BatchMetadata m = new BatchMetadata(0, 0, 64, Delivery.CUDA, 0, 10, null, first);
    assertEquals(m, BatchMetadata.parse(m.toJson()));
    CudaSlot later =
        new CudaSlot("/dev/shm/x/c1-t-r0", 0, 8 << 20, null, 1 << 20, 262656, 1, columns);
    BatchMetadata n = new BatchMetadata(0, 1, 128, Delivery.CUDA, 0, 10, null, later);
    assertEquals(n, BatchMetadata.parse(n.toJson()), "the handle comes once, with the first");
    assertThrows(
        ProtocolException.class,
        () -> new BatchMetadata(0, 0, 64, Delivery.CUDA, 0, 10),
        "cuda without a descriptor");
    assertEquals(
        "cuda.handle",
        assertThrows(
                ProtocolException.class,
                () -> new CudaSlot("/c", 0, 8 << 20, "AAAA", 0, 512, 0, columns.subList(0, 1)))
            .field());
    assertEquals(
        "cuda",
        assertThrows(
                ProtocolException.class,
                () -> new CudaSlot("/c", 0, 1024, null, 512, 1024, 0, columns.subList(0, 1)))
            .field(),
        "a batch past the pool's end");
    assertEquals(
        "cuda.columns",
        assertThrows(
                ProtocolException.class,
                () -> new CudaSlot("/c", 0, 8 << 20, null, 0, 512, 0, columns.subList(1, 2)))
            .field(),
        "a column outside its batch");
    assertEquals(
        "cuda.columns",
        assertThrows(
                ProtocolException.class,
                () -> new CudaSlot("/c", 0, 8 << 20, null, 1 << 20, 1024, 0, columns))
            .field(),
        "a column that starts in its batch and runs past its end");
    assertEquals(
        "cuda",
        assertThrows(
                ProtocolException.class,
                () ->
                    new CudaSlot(
                        "/c", 0, 8 << 20, null, Long.MAX_VALUE - 8, 512, 0, columns.subList(0, 1)))
            .field(),
        "offset + length wrapping past Long.MAX_VALUE");
    assertEquals(-1, new CudaSlot.Column("x", 0, "float32", List.of(4L)).bytes());
  }
}
