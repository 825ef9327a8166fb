package io.sluice.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightInfo;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.auth2.BearerCredentialWriter;
import org.apache.arrow.flight.grpc.CredentialCallOption;
import org.apache.arrow.memory.BufferAllocator;

/**
 * A connection to one Sluice daemon. Thread-safe: several ranks may open streams through one
 * client. Batches land in the caller's allocator.
 */
public final class SluiceClient implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final FlightClient flight;
  private final BufferAllocator allocator;
  private final CallOption[] calls;
  private final String uri;
  private final Security security;
  private volatile String shmToken;
  private volatile String shmCause;

  /**
   * How to reach a daemon that requires more than plaintext: a bearer token (sent as {@code
   * authorization: Bearer TOKEN} on every call) and the certificates that sign its TLS certificate
   * (PEM; null: the JVM's default trust). Either may be null.
   */
  public record Security(String token, Path trustedCertificates) {
    /** Plaintext, no token. */
    public static Security none() {
      return new Security(null, null);
    }

    /**
     * From the environment the Python client reads too: {@code SLUICE_TOKEN} (the token itself) or
     * {@code SLUICE_TOKEN_FILE}, and {@code SLUICE_TLS_CA} (a PEM file).
     */
    public static Security fromEnvironment(java.util.Map<String, String> env) {
      String token = env.get("SLUICE_TOKEN");
      String file = env.get("SLUICE_TOKEN_FILE");
      if (token == null && file != null) {
        try {
          token = Files.readString(Path.of(file), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
          throw new ProtocolException(
              "token", "SLUICE_TOKEN_FILE=" + file + " cannot be read: " + e.getMessage(), e);
        }
      }
      String ca = env.get("SLUICE_TLS_CA");
      return new Security(token, ca == null ? null : Path.of(ca));
    }

    @Override
    public String toString() {
      return "Security[token="
          + (token == null ? "none" : "(set)")
          + ", ca="
          + trustedCertificates
          + "]";
    }
  }

  private SluiceClient(
      FlightClient flight,
      BufferAllocator allocator,
      CallOption[] calls,
      String uri,
      Security security) {
    this.flight = flight;
    this.allocator = allocator;
    this.calls = calls;
    this.uri = uri;
    this.security = security;
  }

  /**
   * Connects to {@code grpc://host:port} (or {@code grpc+tcp://}), plaintext and without a token.
   */
  public static SluiceClient connect(String uri, BufferAllocator allocator) {
    return connect(uri, allocator, Security.none());
  }

  /**
   * Connects to {@code grpc://host:port}, or {@code grpc+tls://host:port} for a daemon serving TLS,
   * presenting {@code security}'s token on every call.
   */
  public static SluiceClient connect(String uri, BufferAllocator allocator, Security security) {
    String full = uri.contains("://") ? uri : "grpc+tcp://" + uri;
    Location location;
    try {
      location = new Location(full);
    } catch (java.net.URISyntaxException e) {
      throw new ProtocolException("uri", "uri=" + uri + " is not a valid Flight location", e);
    }
    FlightClient.Builder b = FlightClient.builder(allocator, location);
    Path ca = security.trustedCertificates();
    if (ca != null) {
      try {
        // The builder reads the stream at build(): hand it the bytes, not an open file.
        b.trustedCertificates(new java.io.ByteArrayInputStream(Files.readAllBytes(ca)));
      } catch (IOException e) {
        throw new ProtocolException(
            "tls_ca", "trusted certificates " + ca + " cannot be read: " + e, e);
      }
    }
    CallOption[] calls =
        security.token() == null
            ? new CallOption[0]
            : new CallOption[] {
              new CredentialCallOption(new BearerCredentialWriter(security.token()))
            };
    try {
      return new SluiceClient(b.build(), allocator, calls, uri, security);
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(
          "tls_ca",
          "trusted certificates " + ca + " are not PEM certificates: " + e.getMessage(),
          e);
    }
  }

  /** The daemon's stats action: read-ahead per job, streams, and every metric, as JSON. */
  public JsonNode stats() {
    Iterator<Result> results =
        flight.doAction(new Action(Protocol.STATS_ACTION, new byte[0]), calls);
    if (!results.hasNext()) {
      throw new ProtocolException("stats", "the daemon answered the stats action with nothing");
    }
    try {
      JsonNode answer = JSON.readTree(results.next().getBody());
      while (results.hasNext()) {
        results.next();
      }
      return answer;
    } catch (IOException e) {
      throw new ProtocolException("stats", "the daemon's stats are not JSON: " + e.getMessage(), e);
    }
  }

  /** The datasets the daemon serves, by name. */
  public List<String> datasets() {
    List<String> names = new ArrayList<>();
    for (FlightInfo info : flight.listFlights(org.apache.arrow.flight.Criteria.ALL, calls)) {
      FlightDescriptor d = info.getDescriptor();
      names.add(
          d.isCommand()
              ? new String(d.getCommand(), java.nio.charset.StandardCharsets.UTF_8)
              : String.join("/", d.getPath()));
    }
    return names;
  }

  /** Samples in {@code dataset}, as the daemon's ListFlights reports them. */
  public long totalSamples(String dataset) {
    for (FlightInfo info : flight.listFlights(org.apache.arrow.flight.Criteria.ALL, calls)) {
      FlightDescriptor d = info.getDescriptor();
      if (!d.isCommand() && d.getPath().size() == 1 && d.getPath().get(0).equals(dataset)) {
        return info.getRecords();
      }
    }
    throw new ProtocolException("dataset", "dataset=" + dataset + " is not served by the daemon");
  }

  /**
   * Opens one rank's stream for one epoch; iterate it, then close it. For {@code shm}, {@code cuda}
   * and {@code auto} delivery the request carries this client's shm token when {@link #shmToken()}
   * found one.
   */
  public RankStream open(StreamRequest request) {
    return open(request, Duration.ZERO);
  }

  /**
   * As {@link #open(StreamRequest)}, and when the stream breaks off with UNAVAILABLE after it
   * opened (a daemon restart), {@link RankStream#next()} opens it again at its position for up to
   * {@code reconnectTimeout} (with a connection of its own, so this client's other streams are left
   * alone): the next batch is the one after the last it returned, nothing lost or repeated. It
   * gives up at once when the daemon answers and refuses the stream, or when the stream breaks
   * again at the same position before a batch; {@link Duration#ZERO} never reopens. The Python
   * client's {@code reconnect_timeout} does the same.
   */
  public RankStream open(StreamRequest request, Duration reconnectTimeout) {
    if (reconnectTimeout == null || reconnectTimeout.isNegative()) {
      throw new IllegalArgumentException(
          "reconnectTimeout=" + reconnectTimeout + " must be zero or more");
    }
    return new RankStream(request, openStream(request), allocator, this, reconnectTimeout);
  }

  /** A new stream for {@code request}, with this client's shm token where it has one. */
  org.apache.arrow.flight.FlightStream openStream(StreamRequest request) {
    if (request.delivery() != Delivery.CPU && request.shmToken() == null) {
      probeShm(true); // per stream, as the Python client: the daemon may have restarted
      String token = shmToken;
      if (token != null) {
        request = request.withShmToken(token);
      }
    }
    FlightInfo info = flight.getInfo(FlightDescriptor.command(request.toJson()), calls);
    if (info.getEndpoints().isEmpty()) {
      throw new ProtocolException("endpoints", "daemon answered GetFlightInfo with no endpoint");
    }
    return flight.getStream(info.getEndpoints().get(0).getTicket(), calls);
  }

  /** A new client to the same daemon, with the same security, into the same allocator. */
  SluiceClient reconnected() {
    return connect(uri, allocator, security);
  }

  /** The daemon's address, as given to {@link #connect}. */
  public String uri() {
    return uri;
  }

  /**
   * The daemon's shm token when this process can read its probe file (same host, same shared
   * memory, allowed to open it), else null with the reason in {@link #shmUnavailableCause()}. Asked
   * at the first call, and again each time a shm, cuda or auto stream is opened (a restarted daemon
   * has a new token).
   */
  public String shmToken() {
    if (shmToken == null && shmCause == null) {
      probeShm(false);
    }
    return shmToken;
  }

  /** Why this client cannot use shm delivery, or null when it can (or has not asked yet). */
  public String shmUnavailableCause() {
    return shmCause;
  }

  private synchronized void probeShm(boolean again) {
    if (!again && (shmToken != null || shmCause != null)) {
      return;
    }
    shmToken = null;
    shmCause = null;
    try {
      Iterator<Result> results =
          flight.doAction(new Action(Protocol.SHM_PROBE_ACTION, new byte[0]), calls);
      if (!results.hasNext()) {
        shmCause = "the daemon answered the shm probe with nothing";
        return;
      }
      JsonNode answer = JSON.readTree(results.next().getBody());
      while (results.hasNext()) {
        results.next();
      }
      if (!answer.path("available").asBoolean(false)) {
        shmCause = "the daemon has no shared memory: " + answer.path("cause").asText("unknown");
        return;
      }
      if (answer.path("layout_version").asInt(-1) != ShmLayout.VERSION) {
        shmCause =
            "the daemon's shm layout_version="
                + answer.path("layout_version")
                + " is not this client's ("
                + ShmLayout.VERSION
                + ")";
        return;
      }
      Path probe = Path.of(answer.path("path").asText());
      shmToken = Files.readString(probe, StandardCharsets.US_ASCII).trim();
    } catch (IOException | RuntimeException e) {
      shmCause = "cannot read the daemon's shm probe: " + e;
    }
  }

  /** The underlying Flight client, for tests that speak raw Flight to the daemon. */
  public FlightClient flightForTests() {
    return flight;
  }

  @Override
  public void close() {
    // An interrupted caller still closes the channel and its allocator (FlightClient.close()
    // would throw at its wait and leave them open); the interrupt is kept for the caller.
    boolean interrupted = Thread.interrupted();
    try {
      flight.close();
    } catch (InterruptedException e) {
      interrupted = true;
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
