package io.sluice.server;

import io.sluice.demo.DemoDataset;
import io.sluice.format.IndexProgress;
import io.sluice.format.tokens.TokenDtype;
import io.sluice.format.tokens.TokensFormat;
import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3Settings;
import io.sluice.s3.S3Store;
import io.sluice.s3test.S3TestServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

/** A demo token dataset in an s3proxy bucket, indexed there, for ITs of daemons that read it. */
final class BucketTokens {
  private BucketTokens() {}

  /**
   * Writes the demo dataset under {@code work}, uploads its shards to {@code s3://bucket/prefix}
   * and indexes it in place, in this JVM (the daemons only read).
   */
  static void upload(
      S3TestServer server,
      Path work,
      String bucket,
      String prefix,
      int shards,
      int perShard,
      int seqLen)
      throws Exception {
    Path local = work.resolve(prefix);
    DemoDataset.ensure(local, shards, perShard, seqLen);
    Path upload = Files.createDirectories(work.resolve(prefix + "-upload"));
    try (var files = Files.list(local)) {
      for (Path p : files.filter(f -> f.toString().endsWith(".bin")).toList()) {
        Files.copy(p, upload.resolve(p.getFileName()));
      }
    }
    server.uploadFolder(upload, bucket, prefix);
    S3Settings settings =
        S3Settings.defaults(work.resolve("meta"))
            .resolve(Map.of("AWS_ENDPOINT_URL", server.endpoint().toString()));
    try (S3FileSystem fs =
        S3FileSystem.open(
            S3Store.open(
                settings,
                StaticCredentialsProvider.create(
                    AwsBasicCredentials.create(server.accessKey(), server.secretKey()))))) {
      TokensFormat.index(
          fs.path("s3://" + bucket + "/" + prefix), TokenDtype.UINT16, seqLen, IndexProgress.NONE);
    }
  }
}
