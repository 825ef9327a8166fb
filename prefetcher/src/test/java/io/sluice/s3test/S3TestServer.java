package io.sluice.s3test;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse.BodyHandlers;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.async.AsyncRequestBody;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3AsyncClient;
import software.amazon.awssdk.services.s3.S3CrtAsyncClientBuilder;

/**
 * A real S3 endpoint for integration tests: s3proxy 4.1.0 serving a local folder, in a JVM of its
 * own.
 *
 * <p>s3proxy's dependencies (Jetty, gRPC, Jackson of other versions) clash with the daemon's, so it
 * runs as a child process from the class path that the {@code testing/s3proxy} module writes; the
 * system property {@value #CLASSPATH_PROPERTY} names that file. Buckets and objects are set up with
 * the AWS SDK's CRT-based client, the only S3 client on the daemon's class path. The server's data,
 * configuration and log live in a fresh folder under the base folder given to {@link #start}, and
 * stay there after {@link #close} (the log explains a failed test; the base folder is the
 * caller's).
 */
public final class S3TestServer implements AutoCloseable {
  /** System property naming the file that holds s3proxy's class path. */
  public static final String CLASSPATH_PROPERTY = "sluice.s3proxy.classpath";

  /** Where the class path file is, seen from flight-server, when the property is not set. */
  private static final Path DEFAULT_CLASSPATH_FILE =
      Path.of("..", "testing", "s3proxy", "target", "s3proxy.classpath");

  private static final String HOST = "127.0.0.1";
  private static final String REGION = "us-east-1";
  private static final String ACCESS_KEY = "sluice-test";
  private static final String SECRET_KEY = "sluice-test-secret";
  private static final Duration START_TIMEOUT = Duration.ofSeconds(30);
  private static final Duration STOP_TIMEOUT = Duration.ofSeconds(10);
  private static final int START_ATTEMPTS = 5;
  private static final int LOG_TAIL_LINES = 40;
  private static final long MAX_SINGLE_PUT_BYTES = 5L << 30;
  // The CRT client sends a checksummed PUT as one aws-chunked chunk, which s3proxy buffers whole
  // and by default refuses above 16 MiB; real S3 takes any size.
  private static final int MAX_CHUNK_BYTES = 1 << 30;

  // s3proxy logs every request at DEBUG unless configured. Its Main sends System.err to its logger,
  // so an appender writing to System.err would feed itself: log to System.out, i.e. the log file.
  private static final String LOGBACK_XML =
      """
      <configuration>
        <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
          <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
        </appender>
        <root level="WARN"><appender-ref ref="OUT"/></root>
      </configuration>
      """;

  private final Process process;
  private final URI endpoint;
  private final Path log;
  private final Thread killOnExit;
  private S3AsyncClient client; // for set-up calls, built on first use; guarded by this

  private S3TestServer(Process process, URI endpoint, Path log) {
    this.process = process;
    this.endpoint = endpoint;
    this.log = log;
    // A test JVM that ends without close() must not leave the server running.
    this.killOnExit = new Thread(process::destroyForcibly, "s3proxy-kill-on-exit");
    Runtime.getRuntime().addShutdownHook(killOnExit);
  }

  /**
   * Starts s3proxy on a free loopback port and waits until it answers HTTP.
   *
   * @param baseDir folder (created if missing) under which the server gets a fresh folder for its
   *     data, configuration and log
   * @throws IOException if the class path file is missing, or the server exits or stays silent
   *     during start (the message holds the tail of its log)
   */
  public static S3TestServer start(Path baseDir) throws IOException, InterruptedException {
    String classPath = readClassPath();
    Path dir = Files.createTempDirectory(Files.createDirectories(baseDir), "s3proxy-");
    Path data = Files.createDirectory(dir.resolve("data"));
    Path logback = Files.writeString(dir.resolve("logback.xml"), LOGBACK_XML);
    Path log = dir.resolve("s3proxy.log");
    // The port is free when picked but may be taken before s3proxy binds it: then pick again.
    for (int attempt = 1; ; attempt++) {
      URI endpoint = URI.create("http://" + HOST + ":" + freePort());
      Path properties =
          Files.writeString(dir.resolve("s3proxy.properties"), properties(endpoint, data));
      Process process = launch(classPath, logback, properties, log);
      try {
        if (awaitReady(process, endpoint, log)) {
          return new S3TestServer(process, endpoint, log);
        }
        if (attempt == START_ATTEMPTS) {
          throw startFailure("no free port after " + attempt + " attempts", endpoint, log);
        }
      } catch (IOException | InterruptedException | RuntimeException e) {
        stop(process);
        throw e;
      }
    }
  }

  /** The server's base address, {@code http://127.0.0.1:<port>}; buckets are addressed by path. */
  public URI endpoint() {
    return endpoint;
  }

  /** The access key id the server accepts. */
  public String accessKey() {
    return ACCESS_KEY;
  }

  /** The secret key the server accepts. */
  public String secretKey() {
    return SECRET_KEY;
  }

  /** The region clients sign for: {@code us-east-1}. */
  public String region() {
    return REGION;
  }

  /** The server's log file (WARN and above), for a test's failure message. */
  public Path log() {
    return log;
  }

  /**
   * A builder for the CRT-based S3 client, set up for this server: region, endpoint, credentials,
   * path-style addressing, and uploads in one PUT. Tests may change it before {@code build()}, e.g.
   * point it at a {@link FaultProxy} or change retries.
   *
   * <p>The CRT client's multipart uploads fail against s3proxy 4.1.0 ("Upload Id not found in
   * create-multipart-upload response", though the response holds one), so uploads stay single PUTs
   * up to S3's limit for one.
   */
  public S3CrtAsyncClientBuilder clientBuilder() {
    return S3AsyncClient.crtBuilder()
        .region(Region.of(REGION))
        .endpointOverride(endpoint)
        .forcePathStyle(true)
        .credentialsProvider(
            StaticCredentialsProvider.create(AwsBasicCredentials.create(ACCESS_KEY, SECRET_KEY)))
        .thresholdInBytes(MAX_SINGLE_PUT_BYTES);
  }

  /**
   * Environment variables that point an AWS SDK in a child process (pyarrow, boto3, the daemon) at
   * this server.
   */
  public Map<String, String> awsEnvironment() {
    return Map.of(
        "AWS_ACCESS_KEY_ID", ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY", SECRET_KEY,
        "AWS_REGION", REGION,
        "AWS_ENDPOINT_URL", endpoint.toString());
  }

  /** Creates a bucket. */
  public void createBucket(String bucket) {
    join(client().createBucket(b -> b.bucket(bucket)), "createBucket bucket=" + bucket);
  }

  /** Uploads a file as one object. */
  public void putObject(String bucket, String key, Path file) {
    join(
        client().putObject(b -> b.bucket(bucket).key(key), AsyncRequestBody.fromFile(file)),
        "putObject bucket=" + bucket + " key=" + key + " file=" + file);
  }

  /** Uploads bytes as one object. */
  public void putObject(String bucket, String key, byte[] data) {
    join(
        client().putObject(b -> b.bucket(bucket).key(key), AsyncRequestBody.fromBytes(data)),
        "putObject bucket=" + bucket + " key=" + key + " lengthBytes=" + data.length);
  }

  /**
   * Uploads every regular file directly in {@code dir} (not its subfolders) as {@code prefix + "/"
   * + fileName}, or as {@code fileName} when the prefix is empty.
   */
  public void uploadFolder(Path dir, String bucket, String prefix) throws IOException {
    List<Path> files;
    try (Stream<Path> listing = Files.list(dir)) {
      files = listing.filter(Files::isRegularFile).sorted().toList();
    }
    List<CompletableFuture<?>> uploads = new ArrayList<>();
    for (Path file : files) {
      String name = file.getFileName().toString();
      String key = prefix.isEmpty() ? name : prefix + "/" + name;
      uploads.add(
          client().putObject(b -> b.bucket(bucket).key(key), AsyncRequestBody.fromFile(file)));
    }
    join(
        CompletableFuture.allOf(uploads.toArray(CompletableFuture[]::new)),
        "uploadFolder dir=" + dir + " bucket=" + bucket + " prefix=" + prefix);
  }

  /** Stops the server: asks it to exit, then kills it if it has not within 10 s. */
  @Override
  public void close() {
    synchronized (this) {
      if (client != null) {
        client.close();
        client = null;
      }
    }
    stop(process);
    Runtime.getRuntime().removeShutdownHook(killOnExit);
  }

  private synchronized S3AsyncClient client() {
    if (client == null) {
      client = clientBuilder().build();
    }
    return client;
  }

  private static <T> T join(CompletableFuture<T> call, String what) {
    try {
      return call.join();
    } catch (CompletionException e) {
      throw new IllegalStateException(what + " failed", e.getCause());
    }
  }

  private static String readClassPath() throws IOException {
    String property = System.getProperty(CLASSPATH_PROPERTY);
    Path file = property != null ? Path.of(property) : DEFAULT_CLASSPATH_FILE;
    if (!Files.isRegularFile(file)) {
      throw new FileNotFoundException(
          "s3proxy class path file missing: "
              + CLASSPATH_PROPERTY
              + "="
              + file.toAbsolutePath()
              + " (write it with ./mvnw -pl testing/s3proxy generate-resources)");
    }
    return Files.readString(file).strip();
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName(HOST))) {
      return socket.getLocalPort();
    }
  }

  private static String properties(URI endpoint, Path data) {
    return String.join(
        "\n",
        "s3proxy.endpoint=" + endpoint,
        "s3proxy.authorization=aws-v2-or-v4",
        "s3proxy.identity=" + ACCESS_KEY,
        "s3proxy.credential=" + SECRET_KEY,
        "s3proxy.v4-max-chunk-size=" + MAX_CHUNK_BYTES,
        "jclouds.provider=filesystem",
        "jclouds.filesystem.basedir=" + data,
        "");
  }

  private static Process launch(String classPath, Path logback, Path properties, Path log)
      throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    return new ProcessBuilder(
            java,
            "-Dlogback.configurationFile=" + logback,
            "-cp",
            classPath,
            "org.gaul.s3proxy.Main",
            "--properties",
            properties.toString())
        .redirectErrorStream(true)
        .redirectOutput(log.toFile())
        .start();
  }

  /**
   * Waits until the server answers HTTP (any status: an unsigned {@code GET /} gets 403).
   *
   * @return false if it exited because its port was taken
   */
  private static boolean awaitReady(Process process, URI endpoint, Path log)
      throws IOException, InterruptedException {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    try (HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build()) {
      HttpRequest probe = HttpRequest.newBuilder(endpoint).timeout(Duration.ofSeconds(2)).build();
      while (System.nanoTime() < deadline) {
        if (!process.isAlive()) {
          if (Files.readString(log, StandardCharsets.ISO_8859_1).contains("Failed to bind")) {
            return false;
          }
          throw startFailure("exited with exitCode=" + process.exitValue(), endpoint, log);
        }
        try {
          http.send(probe, BodyHandlers.discarding());
          return true;
        } catch (IOException notYet) {
          Thread.sleep(100);
        }
      }
    }
    throw startFailure(
        "did not answer HTTP within " + START_TIMEOUT.toSeconds() + " s", endpoint, log);
  }

  private static IOException startFailure(String what, URI endpoint, Path log) {
    return new IOException(
        "s3proxy "
            + what
            + ": endpoint="
            + endpoint
            + " log="
            + log
            + "\n--- last lines of the log ---\n"
            + tail(log));
  }

  private static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
      return String.join(
          "\n", lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size()));
    } catch (IOException e) {
      return "(cannot read the log: " + e + ")";
    }
  }

  private static void stop(Process process) {
    process.destroy();
    try {
      if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
        process.destroyForcibly().waitFor();
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }
}
