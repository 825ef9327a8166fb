package io.sluice.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.format.ShardFormat;
import io.sluice.format.arrow.ArrowIpcFiles;
import io.sluice.format.megatron.MegatronDtype;
import io.sluice.format.megatron.MegatronWriter;
import io.sluice.format.wds.TarWriter;
import io.sluice.read.PosixReadBackend;
import io.sluice.s3test.FaultProxy;
import io.sluice.s3test.FaultProxy.Fault;
import io.sluice.s3test.S3TestServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

/**
 * Every format indexed and read from a real S3-compatible server (s3proxy) gives exactly what the
 * same files give from a local folder: the same manifest (ETags aside), the same bytes for every
 * sample, read in a shuffled order through the s3 backend's ranged GETs.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class S3FormatsIT {
  private static final String BUCKET = "datasets";

  private Path tmp;
  private S3TestServer server;
  private S3FileSystem fs;
  private S3ReadBackend s3;
  private BufferAllocator allocator;

  @BeforeAll
  void start(@TempDir Path tempDir) throws Exception {
    tmp = tempDir;
    server = S3TestServer.start(tmp.resolve("s3proxy"));
    server.createBucket(BUCKET);
    fs = S3FileSystem.open(S3Store.open(settings(tmp.resolve("overlay")), credentials(server)));
    s3 = new S3ReadBackend(fs);
    allocator = new RootAllocator();
  }

  private S3Settings settings(Path metadataDir) {
    return S3Settings.defaults(metadataDir)
        .resolve(Map.of("AWS_ENDPOINT_URL", server.endpoint().toString()));
  }

  static StaticCredentialsProvider credentials(S3TestServer server) {
    return StaticCredentialsProvider.create(
        AwsBasicCredentials.create(server.accessKey(), server.secretKey()));
  }

  @AfterAll
  void stop() throws Exception {
    if (fs != null) {
      fs.close();
    }
    if (allocator != null) {
      allocator.close(); // fails on a leak
    }
    if (server != null) {
      server.close();
    }
  }

  @Test
  void tokensReadTheSameFromTheBucket() throws Exception {
    Path local = Files.createDirectories(tmp.resolve("tokens"));
    Random rnd = new Random(1);
    for (int s = 0; s < 3; s++) {
      byte[] b = new byte[2 * 64 * (200 + 37 * s)];
      rnd.nextBytes(b);
      Files.write(local.resolve(String.format("part-%02d.bin", s)), b);
    }
    sameFromTheBucket("tokens", local, Map.of("dtype", "uint16", "seq_len", "64"));
  }

  @Test
  void megatronReadsTheSameFromTheBucket() throws Exception {
    Path local = Files.createDirectories(tmp.resolve("megatron"));
    Random rnd = new Random(2);
    for (int s = 0; s < 3; s++) {
      MegatronWriter.write(
          local,
          "shard_" + s,
          MegatronDtype.UINT16,
          MegatronWriter.randomSequences(rnd, MegatronDtype.UINT16, 150, 300));
    }
    sameFromTheBucket("megatron", local, Map.of());
  }

  @Test
  void webDatasetReadsTheSameFromTheBucket() throws Exception {
    Path local = Files.createDirectories(tmp.resolve("wds"));
    Random rnd = new Random(3);
    int key = 0;
    for (int s = 0; s < 3; s++) {
      TarWriter w = new TarWriter();
      for (int i = 0; i < 120; i++, key++) {
        byte[] jpg = new byte[rnd.nextInt(5000)];
        rnd.nextBytes(jpg);
        w.file(String.format("sample%06d.jpg", key), jpg);
        w.file(String.format("sample%06d.cls", key), Integer.toString(key % 10).getBytes());
      }
      w.writeTo(local.resolve(String.format("shard-%02d.tar", s)));
    }
    sameFromTheBucket("wds", local, Map.of());
  }

  @Test
  void arrowReadsTheSameFromTheBucket() throws Exception {
    Path local = Files.createDirectories(tmp.resolve("arrow"));
    ArrowIpcFiles.write(
        local.resolve("a.arrow"),
        ArrowIpcFiles.WIDE,
        ArrowIpcFiles.Framing.FILE,
        0,
        allocator,
        50,
        0,
        70);
    ArrowIpcFiles.write(
        local.resolve("b.arrows"),
        ArrowIpcFiles.WIDE,
        ArrowIpcFiles.Framing.STREAM,
        120,
        allocator,
        40,
        60);
    sameFromTheBucket("arrow", local, Map.of());
  }

  /**
   * Uploads the shards of {@code local}, indexes both, and compares the manifests and every sample
   * (in a shuffled order, in batches of 17, so reads land everywhere in the shards).
   */
  private void sameFromTheBucket(String format, Path local, Map<String, String> options)
      throws Exception {
    String prefix = "it/" + format;
    server.uploadFolder(local, BUCKET, prefix);
    ShardFormat f = Formats.byName(format);
    f.index(local, options, IndexProgress.NONE);
    S3Path remote = fs.path("s3://" + BUCKET + "/" + prefix);
    IndexReport r = f.index(remote, options, IndexProgress.NONE);
    assertFalse(r.reused());
    assertTrue(Files.exists(remote.resolve(Manifest.FILE_NAME)), "manifest beside the data");
    Manifest localManifest = Manifest.read(local);
    Manifest remoteManifest = Manifest.read(remote);
    assertEquals(localManifest.totalSamples(), remoteManifest.totalSamples());
    assertEquals(localManifest.shards().size(), remoteManifest.shards().size());
    for (int i = 0; i < localManifest.shards().size(); i++) {
      assertEquals(
          localManifest.shards().get(i).path(),
          remoteManifest.shards().get(i).path(),
          "shard " + i);
      assertEquals(
          localManifest.shards().get(i).lengthBytes(),
          remoteManifest.shards().get(i).lengthBytes());
      assertTrue(remoteManifest.shards().get(i).etag() != null, "the ETag is recorded");
    }
    assertTrue(f.index(remote, options, IndexProgress.NONE).reused(), "unchanged: reused");

    long n = localManifest.totalSamples();
    long[] order = shuffled(n, new Random(format.hashCode()));
    try (PosixReadBackend posix = new PosixReadBackend();
        SampleSource a = Formats.open(local, posix);
        SampleSource b = Formats.open(remote, s3)) {
      assertEquals(a.schema(), b.schema());
      for (int at = 0; at < n; at += 17) {
        int count = (int) Math.min(17, n - at);
        long[] ids = java.util.Arrays.copyOfRange(order, at, at + count);
        try (VectorSchemaRoot ra = VectorSchemaRoot.create(a.schema(), allocator);
            VectorSchemaRoot rb = VectorSchemaRoot.create(b.schema(), allocator)) {
          a.fill(ids, count, ra);
          ra.setRowCount(count);
          b.fill(ids, count, rb);
          rb.setRowCount(count);
          assertTrue(ra.equals(rb), () -> format + ": samples " + java.util.Arrays.toString(ids));
        }
      }
    }
  }

  @Test
  void aReplacedObjectIsRefusedNamingIt() throws Exception {
    Path local = Files.createDirectories(tmp.resolve("replaced"));
    Files.write(local.resolve("a.bin"), new byte[2 * 16 * 10]);
    server.uploadFolder(local, BUCKET, "it/replaced");
    S3Path remote = fs.path("s3://" + BUCKET + "/it/replaced");
    Formats.byName("tokens").index(remote, Map.of("seq_len", "16"), IndexProgress.NONE);
    byte[] other = new byte[2 * 16 * 10];
    other[0] = 1; // same length, other bytes: only the ETag tells
    server.putObject(BUCKET, "it/replaced/a.bin", other);
    try (S3FileSystem fresh =
        S3FileSystem.open(S3Store.open(settings(tmp.resolve("o2")), credentials(server)))) {
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class,
              () -> Formats.open(fresh.path("s3://" + BUCKET + "/it/replaced"), s3));
      assertTrue(e.getMessage().contains("s3://datasets/it/replaced/a.bin"), e.getMessage());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
  }

  @Test
  void aReadOnlyBucketKeepsTheIndexInTheMetadataFolder() throws Exception {
    Path local = Files.createDirectories(tmp.resolve("ro"));
    Random rnd = new Random(4);
    TarWriter w = new TarWriter();
    for (int i = 0; i < 40; i++) {
      byte[] b = new byte[rnd.nextInt(3000)];
      rnd.nextBytes(b);
      w.file(String.format("k%04d.bin", i), b);
    }
    w.writeTo(local.resolve("only.tar"));
    server.uploadFolder(local, BUCKET, "it/ro");
    Path overlay = tmp.resolve("ro-metadata");
    try (FaultProxy proxy = FaultProxy.start(server.endpoint())) {
      // Every PUT is refused as a read-only bucket refuses it; reads pass.
      proxy.onRequest(r -> r.method().equals("PUT") ? Fault.DENY_403 : Fault.PASS);
      S3Settings viaProxy =
          S3Settings.defaults(overlay)
              .resolve(Map.of("AWS_ENDPOINT_URL", proxy.endpoint().toString()));
      try (S3FileSystem ro = S3FileSystem.open(S3Store.open(viaProxy, credentials(server)))) {
        S3Path remote = ro.path("s3://" + BUCKET + "/it/ro");
        ShardFormat wds = Formats.byName("wds");
        wds.index(remote, Map.of(), IndexProgress.NONE);
        assertTrue(proxy.faultsInjected(Fault.Kind.DENY_403) > 0, "the bucket refused the PUT");
        assertTrue(
            Files.isRegularFile(
                overlay.resolve(BUCKET).resolve("it/ro").resolve(Manifest.FILE_NAME)),
            "the manifest went to the metadata folder");
        assertTrue(wds.index(remote, Map.of(), IndexProgress.NONE).reused(), "and is found there");
        Path ref = Files.createDirectories(tmp.resolve("ro-local"));
        Files.copy(local.resolve("only.tar"), ref.resolve("only.tar"));
        wds.index(ref, Map.of(), IndexProgress.NONE);
        try (PosixReadBackend posix = new PosixReadBackend();
            SampleSource a = Formats.open(ref, posix);
            SampleSource b = Formats.open(remote, new S3ReadBackend(ro));
            VectorSchemaRoot ra = VectorSchemaRoot.create(a.schema(), allocator);
            VectorSchemaRoot rb = VectorSchemaRoot.create(b.schema(), allocator)) {
          long[] ids = shuffled(40, new Random(5));
          a.fill(ids, 40, ra);
          ra.setRowCount(40);
          b.fill(ids, 40, rb);
          rb.setRowCount(40);
          assertTrue(ra.equals(rb), "every sample the same, the index from the metadata folder");
        }
      }
    }
  }

  private static long[] shuffled(long n, Random rnd) {
    long[] a = new long[(int) n];
    for (int i = 0; i < n; i++) {
      a[i] = i;
    }
    for (int i = a.length - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      long t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}
