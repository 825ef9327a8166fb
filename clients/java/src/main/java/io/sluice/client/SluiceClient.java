package io.sluice.client;

import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightInfo;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;

/**
 * A connection to one Sluice daemon. Thread-safe: several ranks may open streams through one
 * client. Batches land in the caller's allocator.
 */
public final class SluiceClient implements AutoCloseable {
  private final FlightClient flight;

  private SluiceClient(FlightClient flight) {
    this.flight = flight;
  }

  /** Connects to {@code grpc://host:port} (or {@code grpc+tcp://}). */
  public static SluiceClient connect(String uri, BufferAllocator allocator) {
    String full = uri.contains("://") ? uri : "grpc+tcp://" + uri;
    Location location;
    try {
      location = new Location(full);
    } catch (java.net.URISyntaxException e) {
      throw new ProtocolException("uri", "uri=" + uri + " is not a valid Flight location", e);
    }
    return new SluiceClient(FlightClient.builder(allocator, location).build());
  }

  /** The datasets the daemon serves, by name. */
  public List<String> datasets() {
    List<String> names = new ArrayList<>();
    for (FlightInfo info : flight.listFlights(org.apache.arrow.flight.Criteria.ALL)) {
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
    for (FlightInfo info : flight.listFlights(org.apache.arrow.flight.Criteria.ALL)) {
      FlightDescriptor d = info.getDescriptor();
      if (!d.isCommand() && d.getPath().size() == 1 && d.getPath().get(0).equals(dataset)) {
        return info.getRecords();
      }
    }
    throw new ProtocolException("dataset", "dataset=" + dataset + " is not served by the daemon");
  }

  /** Opens one rank's stream for one epoch; iterate it, then close it. */
  public RankStream open(StreamRequest request) {
    FlightInfo info = flight.getInfo(FlightDescriptor.command(request.toJson()));
    if (info.getEndpoints().isEmpty()) {
      throw new ProtocolException("endpoints", "daemon answered GetFlightInfo with no endpoint");
    }
    return new RankStream(request, flight.getStream(info.getEndpoints().get(0).getTicket()));
  }

  /** The underlying Flight client, for tests that speak raw Flight to the daemon. */
  public FlightClient flightForTests() {
    return flight;
  }

  @Override
  public void close() {
    try {
      flight.close();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
