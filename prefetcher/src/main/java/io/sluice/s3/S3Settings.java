package io.sluice.s3;

import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

/**
 * How the daemon talks to an S3-compatible store. Region, endpoint and credentials come the AWS way
 * (environment, {@code ~/.aws/config} and {@code credentials} profiles, instance roles), and any of
 * them can be set here instead; {@link #resolve} applies the environment. Credentials are never
 * held here: the SDK's default chain (or the named profile) provides them.
 *
 * @param region the store's region; null takes {@code AWS_REGION}, then the profile's, then {@code
 *     us-east-1} when an endpoint is set
 * @param endpoint an S3-compatible endpoint ({@code http://host:port}); null takes {@code
 *     AWS_ENDPOINT_URL_S3}, then {@code AWS_ENDPOINT_URL}, else AWS's own
 * @param pathStyle {@code http://host/bucket/key} addressing; null means on exactly when an
 *     endpoint is set (MinIO, Ceph, s3proxy want it; AWS wants virtual hosts)
 * @param profile the credentials/config profile; null takes {@code AWS_PROFILE}, else "default"
 * @param maxInFlight ranged GETs in flight at most, over every dataset (the prefetcher's own limit
 *     adapts below it to the store's latency)
 * @param maxAttempts tries per range before its read fails (first try included)
 * @param attemptTimeout a try that has not finished by then is abandoned and retried
 * @param hedge a second request for a range when the first is far slower than its peers
 * @param metadataDir where the manifest and index files go when the bucket is read-only
 * @param spillDir a local (NVMe) folder for the spill tier of object-store datasets, or null
 * @param spillBudgetBytes the spill tier's bytes, shared by the object-store datasets
 */
public record S3Settings(
    String region,
    URI endpoint,
    Boolean pathStyle,
    String profile,
    int maxInFlight,
    int maxAttempts,
    Duration attemptTimeout,
    boolean hedge,
    Path metadataDir,
    Path spillDir,
    long spillBudgetBytes) {
  public static final int DEFAULT_MAX_IN_FLIGHT = 64;
  public static final int DEFAULT_MAX_ATTEMPTS = 6;
  public static final Duration DEFAULT_ATTEMPT_TIMEOUT = Duration.ofSeconds(30);
  public static final String DEFAULT_REGION_WITH_ENDPOINT = "us-east-1";
  public static final long DEFAULT_SPILL_BUDGET_BYTES = 32L << 30;

  public S3Settings {
    if (maxInFlight < 1 || maxInFlight > 4096) {
      throw new IllegalArgumentException("s3.max_in_flight=" + maxInFlight + " must be in 1..4096");
    }
    if (maxAttempts < 1 || maxAttempts > 100) {
      throw new IllegalArgumentException("s3.max_attempts=" + maxAttempts + " must be in 1..100");
    }
    if (attemptTimeout.isNegative() || attemptTimeout.isZero()) {
      throw new IllegalArgumentException(
          "s3.attempt_timeout=" + attemptTimeout + " must be positive");
    }
    if (spillBudgetBytes < 0) {
      throw new IllegalArgumentException("s3.spill_budget=" + spillBudgetBytes + " must be >= 0");
    }
    if (endpoint != null && (endpoint.getScheme() == null || endpoint.getHost() == null)) {
      throw new IllegalArgumentException(
          "s3.endpoint=" + endpoint + " must be a URL such as http://127.0.0.1:9000");
    }
  }

  /** Nothing set: everything from the environment and AWS's defaults. */
  public static S3Settings defaults(Path metadataDir) {
    return new S3Settings(
        null,
        null,
        null,
        null,
        DEFAULT_MAX_IN_FLIGHT,
        DEFAULT_MAX_ATTEMPTS,
        DEFAULT_ATTEMPT_TIMEOUT,
        true,
        metadataDir,
        null,
        DEFAULT_SPILL_BUDGET_BYTES);
  }

  /**
   * These settings with what is unset taken from {@code env} (the process environment in
   * production): {@code AWS_ENDPOINT_URL_S3} / {@code AWS_ENDPOINT_URL}, {@code AWS_REGION} /
   * {@code AWS_DEFAULT_REGION}, {@code AWS_PROFILE}. A region still unset stays null for the SDK's
   * own chain (profile, instance metadata), except beside an endpoint, where it is {@value
   * #DEFAULT_REGION_WITH_ENDPOINT} (S3-compatible stores ignore it, the signer needs one).
   */
  public S3Settings resolve(Map<String, String> env) {
    URI ep = endpoint;
    if (ep == null) {
      String v = firstSet(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
      if (v != null) {
        try {
          ep = URI.create(v);
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException("AWS_ENDPOINT_URL=" + v + " is not a URL", e);
        }
      }
    }
    String reg = region != null ? region : firstSet(env, "AWS_REGION", "AWS_DEFAULT_REGION");
    if (reg == null && ep != null) {
      reg = DEFAULT_REGION_WITH_ENDPOINT;
    }
    String prof = profile != null ? profile : firstSet(env, "AWS_PROFILE");
    Boolean path = pathStyle != null ? pathStyle : Boolean.valueOf(ep != null);
    return new S3Settings(
        reg,
        ep,
        path,
        prof,
        maxInFlight,
        maxAttempts,
        attemptTimeout,
        hedge,
        metadataDir,
        spillDir,
        spillBudgetBytes);
  }

  /** True once {@link #resolve} decided; path-style addressing is on. */
  public boolean usePathStyle() {
    return Boolean.TRUE.equals(pathStyle);
  }

  private static String firstSet(Map<String, String> env, String... names) {
    for (String n : names) {
      String v = env.get(n);
      if (v != null && !v.isBlank()) {
        return v.trim();
      }
    }
    return null;
  }
}
