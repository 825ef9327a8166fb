package io.sluice.s3;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.core.async.AsyncRequestBody;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3AsyncClient;
import software.amazon.awssdk.services.s3.S3CrtAsyncClientBuilder;
import software.amazon.awssdk.services.s3.crt.S3CrtRetryConfiguration;
import software.amazon.awssdk.services.s3.model.CommonPrefix;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Response;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * One S3-compatible store: ranged GETs into caller buffers, many in flight, each retried with
 * backoff and hedged when far slower than its peers; and the few metadata calls a dataset needs
 * (list, head, put, copy, delete), retried the same way. Thread-safe; completions run on the CRT
 * client's threads and on one timer thread ({@code sluice-s3-timer}).
 *
 * <p>Implementation notes. Each ranged read holds one of {@link S3Settings#maxInFlight} permits
 * from its first try to its end, so a slow store makes reads queue here instead of piling up in the
 * client. A try writes each body chunk straight into the caller's buffer under the read's lock, and
 * only while the read is unfinished: a hedge and its original may both write (they carry the same
 * {@code If-Match} ETag, so the same bytes), and nothing writes after the read completes and the
 * caller takes its buffer back. The hedge delay is a multiple of the recent median latency of reads
 * of the same size class ({@link LatencyWindow}), the tail-at-scale recipe of Dean and Barroso
 * (CACM 2013); hedges are capped at an eighth of the permits. Retries back off exponentially with
 * full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter").
 */
public final class S3Store implements AutoCloseable {
  /** A failed try waits at most this long before the next one. */
  static final long MAX_BACKOFF_MS = 2_000;

  static final long BASE_BACKOFF_MS = 40;

  private final S3AsyncClient client;
  private final S3Settings settings;
  private final ScheduledExecutorService timers;
  private final Permits permits;
  private final LatencyWindow latency = new LatencyWindow();
  private final int maxHedges;
  private final AtomicInteger liveHedges = new AtomicInteger();
  private final S3Stats stats = new S3Stats();

  private S3Store(S3AsyncClient client, S3Settings settings) {
    this.client = client;
    this.settings = settings;
    this.permits = new Permits(settings.maxInFlight());
    this.maxHedges = Math.max(1, settings.maxInFlight() / 8);
    this.timers =
        Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("sluice-s3-timer").factory());
  }

  /**
   * Opens a client for {@code settings} (already {@link S3Settings#resolve resolved}). Credentials
   * come from the SDK's default chain: {@code AWS_ACCESS_KEY_ID}/{@code AWS_SECRET_ACCESS_KEY}, the
   * profile's files, web identity, container and instance roles.
   */
  public static S3Store open(S3Settings settings) {
    return open(
        settings,
        settings.profile() == null
            ? DefaultCredentialsProvider.builder().build()
            : DefaultCredentialsProvider.builder().profileName(settings.profile()).build());
  }

  /** As {@link #open(S3Settings)}, with credentials from {@code credentials}. */
  public static S3Store open(S3Settings settings, AwsCredentialsProvider credentials) {
    S3CrtAsyncClientBuilder b =
        S3AsyncClient.crtBuilder()
            .credentialsProvider(credentials)
            .forcePathStyle(settings.usePathStyle())
            // Our own permits, hedges and retries decide. The client retries each request once
            // itself: its fewest (numRetries 0 means its default, 3).
            .maxConcurrency(settings.maxInFlight() + Math.max(1, settings.maxInFlight() / 8) + 8)
            .retryConfiguration(S3CrtRetryConfiguration.builder().numRetries(1).build())
            // Index files go up in one PUT (up to S3's 5 GiB), never as multipart uploads.
            .thresholdInBytes(5L << 30)
            .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
            .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED);
    if (settings.region() != null) {
      b.region(Region.of(settings.region()));
    }
    if (settings.endpoint() != null) {
      b.endpointOverride(settings.endpoint());
    }
    return new S3Store(b.build(), settings);
  }

  public S3Settings settings() {
    return settings;
  }

  /** Requests, retries, hedges and bytes since start. */
  public S3Stats stats() {
    return stats;
  }

  /** What a listing or a head says about one object. */
  public record ObjectInfo(
      String bucket, String key, long sizeBytes, String etag, Instant modified) {
    String uri() {
      return "s3://" + bucket + "/" + key;
    }
  }

  /** One page of a listing: objects and (with a delimiter) the common prefixes below. */
  public record Page(List<ObjectInfo> objects, List<String> prefixes, String next) {}

  /**
   * Fills {@code dst} from its position to its limit with the object's bytes at {@code offset},
   * without waiting. Never throws: failures complete the future with an IOException naming the
   * object, the range and the number of tries. {@code dst} is the store's until then.
   */
  public CompletableFuture<Void> read(ObjectInfo object, long offset, ByteBuffer dst) {
    RangeRead r = new RangeRead(object, offset, dst);
    if (r.length == 0) {
      r.done.complete(null);
      return r.done;
    }
    permits.acquire(() -> launch(r, false));
    return r.done;
  }

  private void launch(RangeRead r, boolean hedge) {
    Attempt a = new Attempt(r, hedge);
    synchronized (r) {
      if (r.finished) {
        if (hedge) {
          liveHedges.decrementAndGet(); // taken by hedge(), never to be ended
        }
        return;
      }
      r.tries++;
      r.live++;
    }
    stats.requests.increment();
    if (hedge) {
      stats.hedges.increment();
    }
    GetObjectRequest.Builder req =
        GetObjectRequest.builder()
            .bucket(r.object.bucket())
            .key(r.object.key())
            .range("bytes=" + r.offset + "-" + (r.offset + r.length - 1));
    if (r.object.etag() != null) {
      req.ifMatch(r.object.etag());
    }
    a.startNanos = System.nanoTime();
    a.timeout =
        timers.schedule(
            () -> {
              a.timedOut = true;
              end(
                  a,
                  new IOException(
                      r.what()
                          + ": no answer within "
                          + settings.attemptTimeout().toMillis()
                          + " ms"));
            },
            settings.attemptTimeout().toMillis(),
            TimeUnit.MILLISECONDS);
    CompletableFuture<Void> call;
    try {
      call = client.getObject(req.build(), a);
    } catch (RuntimeException e) {
      end(a, e);
      return;
    }
    a.call = call;
    call.whenComplete((ok, failed) -> end(a, failed));
    if (!hedge && settings.hedge()) {
      long delay = latency.hedgeDelayNanos(r.length);
      if (delay > 0) {
        r.hedgeTimer = timers.schedule(() -> hedge(r), delay, TimeUnit.NANOSECONDS);
      }
    }
  }

  private void hedge(RangeRead r) {
    synchronized (r) {
      if (r.finished || r.live != 1) {
        return;
      }
    }
    if (liveHedges.incrementAndGet() > maxHedges) {
      liveHedges.decrementAndGet();
      return;
    }
    launch(r, true);
  }

  /** A try ended: by its call completing, its timeout, or a failure to start. Runs once per try. */
  private void end(Attempt a, Throwable failed) {
    RangeRead r = a.read;
    boolean won = false;
    boolean retry = false;
    Throwable last = null;
    synchronized (r) {
      if (a.ended) {
        return;
      }
      a.ended = true;
      r.live--;
      if (r.finished) {
        cleanUp(a);
        return;
      }
      if (failed == null && a.received == r.length) {
        r.finished = true;
        if (a.hedge) {
          r.dst.put(r.base, a.own, 0, r.length); // over whatever the slower try wrote
        }
        r.dst.position(r.base + r.length);
        won = true;
      } else {
        r.lastFailure =
            failed != null ? failed : new S3Errors.TruncatedBody(r.what(), a.received, r.length);
        if (r.live == 0) {
          if (S3Errors.retryable(r.lastFailure) && r.tries < settings.maxAttempts()) {
            retry = true;
          } else {
            r.finished = true;
            last = r.lastFailure;
          }
        }
      }
    }
    cleanUp(a);
    if (a.timedOut) {
      stats.timeouts.increment();
    }
    long elapsed = System.nanoTime() - a.startNanos;
    if (won) {
      if (r.hedgeTimer != null) {
        r.hedgeTimer.cancel(false);
      }
      latency.record(r.length, elapsed);
      stats.bytes.add(r.length);
      if (a.hedge) {
        stats.hedgesWon.increment();
      }
      permits.release();
      r.done.complete(null);
    } else if (retry) {
      stats.retries.increment();
      timers.schedule(() -> launch(r, false), backoffMs(r.tries), TimeUnit.MILLISECONDS);
    } else if (last != null) {
      stats.failures.increment();
      permits.release();
      r.done.completeExceptionally(withTries(S3Errors.toIOException(r.what(), last), r.tries));
    }
  }

  private void cleanUp(Attempt a) {
    if (a.timeout != null) {
      a.timeout.cancel(false);
    }
    if (a.call != null && !a.call.isDone()) {
      a.call.cancel(true); // a timed-out or beaten try: let the client drop its connection
    }
    if (a.hedge) {
      liveHedges.decrementAndGet();
    }
  }

  private static IOException withTries(IOException e, int tries) {
    if (tries > 1) {
      e.addSuppressed(new IOException("gave up after " + tries + " tries"));
    }
    return e;
  }

  /** Full jitter: uniform in [0, min(cap, base * 2^(tries-1))]. */
  static long backoffMs(int tries) {
    long ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS << Math.min(16, tries - 1));
    return ThreadLocalRandom.current().nextLong(ceiling + 1);
  }

  // ---- metadata calls: small, synchronous, retried like reads ----

  /** The object's size and ETag, or null when there is none. */
  public ObjectInfo head(String bucket, String key) throws IOException {
    String what = "s3://" + bucket + "/" + key;
    try {
      HeadObjectResponse h = call(what, () -> client.headObject(b -> b.bucket(bucket).key(key)));
      return new ObjectInfo(bucket, key, h.contentLength(), h.eTag(), h.lastModified());
    } catch (IOException e) {
      if (e instanceof NoSuchFileException) {
        return null;
      }
      throw e;
    }
  }

  /**
   * One page of the objects under {@code prefix}; with a {@code delimiter} ("/") the keys one level
   * down only, the deeper ones rolled up into {@link Page#prefixes}. {@code token} continues a
   * previous page ({@link Page#next}, null at the end).
   */
  public Page list(String bucket, String prefix, String delimiter, String token, int maxKeys)
      throws IOException {
    ListObjectsV2Response resp =
        call(
            "s3://" + bucket + "/" + prefix,
            () ->
                client.listObjectsV2(
                    b ->
                        b.bucket(bucket)
                            .prefix(prefix)
                            .delimiter(delimiter)
                            .continuationToken(token)
                            .maxKeys(maxKeys)));
    List<ObjectInfo> objects = new ArrayList<>(resp.contents().size());
    for (S3Object o : resp.contents()) {
      objects.add(new ObjectInfo(bucket, o.key(), o.size(), o.eTag(), o.lastModified()));
    }
    List<String> prefixes = resp.commonPrefixes().stream().map(CommonPrefix::prefix).toList();
    return new Page(
        objects,
        prefixes,
        Boolean.TRUE.equals(resp.isTruncated()) ? resp.nextContinuationToken() : null);
  }

  /** Writes a whole object. */
  public void put(String bucket, String key, byte[] data) throws IOException {
    call(
        "s3://" + bucket + "/" + key,
        () -> client.putObject(b -> b.bucket(bucket).key(key), AsyncRequestBody.fromBytes(data)));
  }

  /** A server-side copy: what a rename is on a store without renames. */
  public void copy(String bucket, String fromKey, String toKey) throws IOException {
    call(
        "s3://" + bucket + "/" + fromKey,
        () ->
            client.copyObject(
                b ->
                    b.sourceBucket(bucket)
                        .sourceKey(fromKey)
                        .destinationBucket(bucket)
                        .destinationKey(toKey)));
  }

  public void delete(String bucket, String key) throws IOException {
    call("s3://" + bucket + "/" + key, () -> client.deleteObject(b -> b.bucket(bucket).key(key)));
  }

  private <T> T call(String what, Supplier<CompletableFuture<T>> op) throws IOException {
    for (int tries = 1; ; tries++) {
      stats.requests.increment();
      try {
        return op.get().join();
      } catch (RuntimeException e) {
        if (!S3Errors.retryable(e) || tries >= settings.maxAttempts()) {
          stats.failures.increment();
          throw withTries(S3Errors.toIOException(what, e), tries);
        }
        stats.retries.increment();
        try {
          Thread.sleep(backoffMs(tries));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException(what + ": interrupted between tries");
        }
      }
    }
  }

  @Override
  public void close() {
    timers.shutdownNow();
    client.close();
  }

  /** One ranged read: its target, its tries, and whether it ended. Guarded by itself. */
  static final class RangeRead {
    final ObjectInfo object;
    final long offset;
    final ByteBuffer dst;
    final int base;
    final int length;
    final CompletableFuture<Void> done = new CompletableFuture<>();
    int tries;
    int live;
    boolean finished;
    Throwable lastFailure;
    volatile ScheduledFuture<?> hedgeTimer;

    RangeRead(ObjectInfo object, long offset, ByteBuffer dst) {
      this.object = object;
      this.offset = offset;
      this.dst = dst;
      this.base = dst.position();
      this.length = dst.remaining();
    }

    String what() {
      return object.uri() + " offset=" + offset + " length=" + length;
    }

    /**
     * Copies a body chunk of try {@code a} into place, unless the read already ended: the first try
     * and its retries write into the caller's buffer, a hedge into its own (two streams of the same
     * bytes interleaved in one buffer would be right only if each were a clean stream from the
     * range's start, which a client that retries inside a try does not promise).
     */
    synchronized void accept(Attempt a, ByteBuffer chunk) throws IOException {
      if (finished || a.ended) {
        return;
      }
      int n = chunk.remaining();
      if (a.received + n > length) {
        throw new IOException(what() + ": body longer than the range asked for");
      }
      if (a.hedge) {
        if (a.own == null) {
          a.own = ByteBuffer.allocate(length);
        }
        a.own.put((int) a.received, chunk, chunk.position(), n);
      } else {
        dst.put(base + (int) a.received, chunk, chunk.position(), n);
      }
      a.received += n;
    }
  }
}
