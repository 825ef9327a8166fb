package io.sluice.s3test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.s3test.FaultProxy.Fault;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.Socket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import software.amazon.awssdk.core.async.AsyncRequestBody;
import software.amazon.awssdk.core.async.AsyncResponseTransformer;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.services.s3.S3AsyncClient;
import software.amazon.awssdk.services.s3.model.S3Exception;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * The S3 test fixtures against a real s3proxy: set-up calls, reads through the CRT client straight
 * and through a {@link FaultProxy}, and what each fault does to that client.
 */
class S3FixtureIT {
  static final String BUCKET = "fixture";
  static final String KEY = "blob.bin";
  static final int OBJECT_BYTES = 300_000;

  @TempDir static Path dir;
  static S3TestServer s3;
  static byte[] object;

  FaultProxy proxy;

  @BeforeAll
  static void startServer() throws Exception {
    s3 = S3TestServer.start(dir);
    s3.createBucket(BUCKET);
    object = randomBytes(OBJECT_BYTES, 1);
    s3.putObject(BUCKET, KEY, object);
  }

  @AfterAll
  static void stopServer() {
    s3.close();
  }

  @BeforeEach
  void startProxy() throws IOException {
    proxy = FaultProxy.start(s3.endpoint());
  }

  @AfterEach
  void stopProxy() {
    proxy.close();
  }

  @Test
  void directReadIsByteIdentical() {
    try (S3AsyncClient client = s3.clientBuilder().build()) {
      assertArrayEquals(object, get(client, KEY, null));
    }
  }

  @Test
  void uploadFolderPutsEachFileUnderThePrefix() throws IOException {
    Path folder = Files.createDirectories(dir.resolve("folder"));
    List<byte[]> contents = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      contents.add(randomBytes(1000 + i, 10 + i));
      Files.write(folder.resolve("shard-" + i + ".bin"), contents.get(i));
    }
    Files.createDirectories(folder.resolve("skipped-subfolder"));

    s3.uploadFolder(folder, BUCKET, "shards");

    try (S3AsyncClient client = s3.clientBuilder().build()) {
      List<String> keys =
          client.listObjectsV2(b -> b.bucket(BUCKET).prefix("shards/")).join().contents().stream()
              .map(S3Object::key)
              .toList();
      assertEquals(List.of("shards/shard-0.bin", "shards/shard-1.bin", "shards/shard-2.bin"), keys);
      for (int i = 0; i < 3; i++) {
        assertArrayEquals(contents.get(i), get(client, keys.get(i), null));
      }
    }
  }

  @Test
  void putObjectFromFileStoresTheFile() throws IOException {
    byte[] data = randomBytes(5000, 3);
    s3.putObject(BUCKET, "from-file.bin", Files.write(dir.resolve("from-file.bin"), data));
    try (S3AsyncClient client = s3.clientBuilder().build()) {
      assertArrayEquals(data, get(client, "from-file.bin", null));
    }
  }

  @Test
  void awsEnvironmentNamesThisServer() {
    assertEquals(s3.endpoint().toString(), s3.awsEnvironment().get("AWS_ENDPOINT_URL"));
    assertEquals(s3.accessKey(), s3.awsEnvironment().get("AWS_ACCESS_KEY_ID"));
    assertEquals(s3.secretKey(), s3.awsEnvironment().get("AWS_SECRET_ACCESS_KEY"));
    assertEquals("us-east-1", s3.awsEnvironment().get("AWS_REGION"));
  }

  @Test
  void passingProxyRelaysReadsByteForByte() {
    try (S3AsyncClient client = client(proxy.endpoint(), 1)) {
      assertArrayEquals(object, get(client, KEY, null));
    }
    assertTrue(proxy.requests() > 0, "requests=" + proxy.requests());
    assertEquals(0, proxy.faultsInjected());
  }

  @ParameterizedTest
  @CsvSource({"0, 0", "0, 9999", "123456, 200000", "299990, 299999"})
  void rangedReadsThroughTheProxy(int first, int last) {
    try (S3AsyncClient client = client(proxy.endpoint(), 1)) {
      byte[] expected = Arrays.copyOfRange(object, first, last + 1);
      assertArrayEquals(expected, get(client, KEY, "bytes=" + first + "-" + last));
    }
  }

  /** Both request framings the CRT client uses: aws-chunked with a checksum, and 100-continue. */
  @ParameterizedTest
  @EnumSource(
      value = RequestChecksumCalculation.class,
      names = {"WHEN_SUPPORTED", "WHEN_REQUIRED"})
  void putsThroughTheProxyStoreTheExactBytes(RequestChecksumCalculation checksums) {
    byte[] data = randomBytes(70_000, 4);
    String key = "put-" + checksums;
    try (S3AsyncClient client =
        s3.clientBuilder()
            .endpointOverride(proxy.endpoint())
            .requestChecksumCalculation(checksums)
            .build()) {
      client.putObject(b -> b.bucket(BUCKET).key(key), AsyncRequestBody.fromBytes(data)).join();
    }
    try (S3AsyncClient client = s3.clientBuilder().build()) {
      assertArrayEquals(data, get(client, key, null));
    }
  }

  /** Larger than s3proxy's default aws-chunked chunk limit and the CRT's multipart thresholds. */
  @Test
  void largeObjectRoundTripsThroughTheProxy() {
    byte[] data = randomBytes(20 << 20, 5);
    try (S3AsyncClient client = client(proxy.endpoint(), 1)) {
      client
          .putObject(b -> b.bucket(BUCKET).key("large.bin"), AsyncRequestBody.fromBytes(data))
          .join();
      assertArrayEquals(data, get(client, "large.bin", null));
    }
  }

  @Test
  void serverHonoursIfMatchOnRangedGet() {
    try (S3AsyncClient client = s3.clientBuilder().build()) {
      CompletionException failed =
          assertThrows(
              CompletionException.class,
              () ->
                  client
                      .getObject(
                          b -> b.bucket(BUCKET).key(KEY).range("bytes=0-9").ifMatch("\"stale\""),
                          AsyncResponseTransformer.toBytes())
                      .join());
      assertEquals(412, assertInstanceOf(S3Exception.class, failed.getCause()).statusCode());
    }
  }

  /** Each fault, on every attempt, fails the read: an error, never short or wrong data. */
  @ParameterizedTest
  @CsvSource({
    "ERROR_503, throttling",
    "ERROR_500, internal server error",
    "RESET, socket is closed",
    "RESET_MID_BODY, socket is closed",
    "TRUNCATE, socket is closed"
  })
  void persistentFaultFailsTheRead(Fault.Kind kind, String crtError) {
    Fault fault = new Fault(kind, 0);
    proxy.onRequest(request -> fault);
    try (S3AsyncClient client = client(proxy.endpoint(), 1)) {
      CompletionException failed =
          assertThrows(CompletionException.class, () -> get(client, KEY, "bytes=0-99999"));
      // The CRT client reports even an HTTP 503 or 500 as its own error, not as an S3Exception.
      SdkClientException error = assertInstanceOf(SdkClientException.class, failed.getCause());
      assertTrue(error.getMessage().contains(crtError), error.getMessage());
    }
    assertEquals(2, proxy.faultsInjected(kind), "numRetries(1): two attempts, both faulted");
    assertEquals(2, proxy.requests());
  }

  /** The CRT client retries each fault by default, and the retried read is whole. */
  @ParameterizedTest
  @EnumSource(
      value = Fault.Kind.class,
      names = {"ERROR_503", "ERROR_500", "RESET", "RESET_MID_BODY", "TRUNCATE"})
  void oneFaultIsRetried(Fault.Kind kind) {
    Fault fault = new Fault(kind, 0);
    proxy.onRequest(request -> request.sequence() == 1 ? fault : Fault.PASS);
    try (S3AsyncClient client = s3.clientBuilder().endpointOverride(proxy.endpoint()).build()) {
      assertArrayEquals(Arrays.copyOfRange(object, 0, 100_000), get(client, KEY, "bytes=0-99999"));
    }
    assertEquals(1, proxy.faultsInjected(kind));
    assertEquals(2, proxy.requests());
  }

  /** Pins a surprise: numRetries(0) does not turn retries off, it means the default (3). */
  @Test
  void crtNumRetriesZeroMeansDefaultRetries() {
    proxy.onRequest(request -> Fault.ERROR_503);
    try (S3AsyncClient client = client(proxy.endpoint(), 0)) {
      assertThrows(CompletionException.class, () -> get(client, KEY, "bytes=0-9"));
    }
    assertEquals(4, proxy.faultsInjected(Fault.Kind.ERROR_503));
  }

  @Test
  void delayHoldsTheResponseBack() {
    long delayMs = 400;
    proxy.onRequest(request -> Fault.delay(delayMs));
    try (S3AsyncClient client = client(proxy.endpoint(), 1)) {
      long start = System.nanoTime();
      assertArrayEquals(Arrays.copyOfRange(object, 10, 20), get(client, KEY, "bytes=10-19"));
      long elapsedMs = (System.nanoTime() - start) / 1_000_000;
      assertTrue(elapsedMs >= delayMs, "elapsedMs=" + elapsedMs + " delayMs=" + delayMs);
    }
    assertEquals(1, proxy.faultsInjected(Fault.Kind.DELAY));
  }

  @Test
  void faultEveryNthCountsOnlyTheNamedMethod() {
    proxy.faultEveryNth(3, Fault.ERROR_503, "GET");
    try (S3AsyncClient client = s3.clientBuilder().endpointOverride(proxy.endpoint()).build()) {
      client
          .putObject(b -> b.bucket(BUCKET).key("nth.bin"), AsyncRequestBody.fromBytes(object))
          .join();
      for (int read = 0; read < 6; read++) {
        int first = read * 1000;
        assertArrayEquals(
            Arrays.copyOfRange(object, first, first + 1000),
            get(client, "nth.bin", "bytes=" + first + "-" + (first + 999)));
      }
    }
    // GETs 3 and 6 of 1..8 fail and are retried as GETs 4 and 7; the PUT is not counted.
    assertEquals(2, proxy.faultsInjected(Fault.Kind.ERROR_503));
    assertEquals(9, proxy.requests());
  }

  @Test
  void randomFaultsHitRangedGetsAndRetriesRecover() {
    proxy.randomFaults(7, 0.3, Fault.ERROR_503, Fault.RESET, Fault.TRUNCATE);
    try (S3AsyncClient client = s3.clientBuilder().endpointOverride(proxy.endpoint()).build()) {
      for (int read = 0; read < 20; read++) {
        int first = read * 10_000;
        assertArrayEquals(
            Arrays.copyOfRange(object, first, first + 10_000),
            get(client, KEY, "bytes=" + first + "-" + (first + 9_999)));
      }
    }
    assertTrue(proxy.faultsInjected() > 0, "faultsInjected=" + proxy.faultsInjected());
    assertEquals(20 + proxy.faultsInjected(), proxy.requests());
  }

  @Test
  void closeStopsTheServer() throws Exception {
    URI endpoint;
    try (S3TestServer second = S3TestServer.start(dir)) {
      endpoint = second.endpoint();
    }
    assertThrows(
        ConnectException.class, () -> new Socket(endpoint.getHost(), endpoint.getPort()).close());
  }

  @Test
  void missingClassPathFileIsNamed() {
    IOException error = startWithClassPathFile(dir.resolve("no-such.classpath"));
    assertInstanceOf(FileNotFoundException.class, error);
    assertTrue(error.getMessage().contains(S3TestServer.CLASSPATH_PROPERTY), error.getMessage());
  }

  @Test
  void serverThatExitsDuringStartIsReportedWithItsLog() throws IOException {
    Path classPath =
        Files.writeString(dir.resolve("broken.classpath"), dir.resolve("no-such.jar").toString());
    IOException error = startWithClassPathFile(classPath);
    assertTrue(error.getMessage().contains("exited"), error.getMessage());
    // The child JVM's own complaint, from the tail of the log.
    assertTrue(error.getMessage().contains("org.gaul.s3proxy.Main"), error.getMessage());
  }

  /** What {@link S3TestServer#start} throws when its class path file is {@code file}. */
  static IOException startWithClassPathFile(Path file) {
    String saved = System.getProperty(S3TestServer.CLASSPATH_PROPERTY);
    System.setProperty(S3TestServer.CLASSPATH_PROPERTY, file.toString());
    try {
      return assertThrows(IOException.class, () -> S3TestServer.start(dir));
    } finally {
      if (saved == null) {
        System.clearProperty(S3TestServer.CLASSPATH_PROPERTY);
      } else {
        System.setProperty(S3TestServer.CLASSPATH_PROPERTY, saved);
      }
    }
  }

  static S3AsyncClient client(URI endpoint, int numRetries) {
    return s3.clientBuilder()
        .endpointOverride(endpoint)
        .retryConfiguration(r -> r.numRetries(numRetries))
        .build();
  }

  /** The object's bytes, or the given range of them ({@code bytes=a-b}) when not null. */
  static byte[] get(S3AsyncClient client, String key, String range) {
    return client
        .getObject(b -> b.bucket(BUCKET).key(key).range(range), AsyncResponseTransformer.toBytes())
        .join()
        .asByteArray();
  }

  static byte[] randomBytes(int length, long seed) {
    byte[] bytes = new byte[length];
    new Random(seed).nextBytes(bytes);
    return bytes;
  }
}
