package io.sluice.read;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3ReadBackend;
import io.sluice.s3.S3Settings;
import io.sluice.s3.S3Store;
import io.sluice.s3test.S3TestServer;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

/**
 * The read-backend contract on the s3 backend, against a real S3-compatible server (s3proxy): the
 * suite's files are objects in a bucket, every read a ranged GET.
 */
class S3ReadBackendIT extends ReadBackendConformanceTest {
  private S3TestServer server;
  private S3FileSystem fs;

  @Override
  protected Path dataDir(Path tempDir) throws IOException {
    try {
      server = S3TestServer.start(tempDir.resolve("s3proxy"));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("interrupted starting s3proxy");
    }
    server.createBucket("conformance");
    S3Settings settings =
        S3Settings.defaults(tempDir.resolve("meta"))
            .resolve(Map.of("AWS_ENDPOINT_URL", server.endpoint().toString()));
    fs =
        S3FileSystem.open(
            S3Store.open(
                settings,
                StaticCredentialsProvider.create(
                    AwsBasicCredentials.create(server.accessKey(), server.secretKey()))));
    return fs.path("s3://conformance/suite");
  }

  @Override
  protected ReadBackend newBackend() {
    return new S3ReadBackend(fs);
  }

  @AfterAll
  void stopServer() throws Exception {
    if (fs != null) {
      fs.close();
    }
    if (server != null) {
      server.close();
    }
  }

  @Test
  void nameAndBatches() {
    assertEquals("s3", backend.name());
    assertTrue(backend.prefersBatches(), "every read is a request in flight");
  }

  /**
   * An object cannot be truncated in place: it is replaced. Reads of the file opened before then
   * carry the old ETag, so every one fails naming the object, never serving the new bytes.
   */
  @Override
  @Test
  void aFileTruncatedAfterOpenFailsPastItsNewEnd() throws IOException {
    Path p = Files.write(dir.resolve("replaced.bin"), data);
    try (ReadFile f = backend.open(p)) {
      Files.write(p, java.util.Arrays.copyOf(data, FILE_BYTES / 2));
      assertEquals(FILE_BYTES, f.lengthBytes(), "length is as opened");
      IOException e =
          assertThrows(IOException.class, () -> f.readFully(100, ByteBuffer.allocateDirect(PAGE)));
      assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
  }

  /** Regression: a stream's miss read into a confined arena failed with WrongThreadException. */
  @Test
  void aBufferConfinedToTheCallerIsFilledByReadFully() throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      ByteBuffer buf = arena.allocate(10_000, 64).asByteBuffer();
      shared.readFully(12_345, buf);
      assertRead(new Range(12_345, 10_000), buf, "confined");
      ByteBuffer other = arena.allocate(100, 64).asByteBuffer();
      CompletionException e =
          assertThrows(CompletionException.class, () -> backend.readAsync(shared, 0, other).join());
      assertTrue(e.getCause().getMessage().contains("confined"), e.getCause().getMessage());
    }
  }

  @Test
  void manyReadsInFlightAtOnceAllLandInTheirOwnBuffers() {
    Random r = new Random(9);
    List<Range> ranges = new ArrayList<>();
    List<ByteBuffer> bufs = new ArrayList<>();
    List<CompletableFuture<Void>> reads = new ArrayList<>();
    for (int i = 0; i < 500; i++) {
      Range range = randomRange(r);
      ByteBuffer buf = ByteBuffer.allocateDirect(range.length());
      ranges.add(range);
      bufs.add(buf);
      reads.add(backend.readAsync(shared, range.offset(), buf));
    }
    CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).join();
    for (int i = 0; i < ranges.size(); i++) {
      assertRead(ranges.get(i), bufs.get(i), "read " + i);
    }
  }
}
