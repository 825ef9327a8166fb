package io.sluice.peer;

import java.util.logging.Logger;

/** Opens the peer transport a daemon's configuration names. */
public final class PeerTransports {
  private static final Logger LOG = Logger.getLogger(PeerTransports.class.getName());

  /** The choices {@code peer.transport} takes. */
  public static final String CHOICES = "auto|ucx|tcp|disni";

  private PeerTransports() {}

  /**
   * {@code auto}: ucx where it starts, else tcp (saying why once); an explicit choice that cannot
   * start here fails with the cause.
   *
   * @param fetchTimeoutMs a fetch unanswered for this long fails
   * @throws PeerException when an explicit choice is unavailable
   */
  public static PeerTransport open(String choice, long fetchTimeoutMs) throws PeerException {
    return switch (choice) {
      case "ucx" -> UcxTransport.create(UcxTransport.DEFAULT_STAGING_BYTES, fetchTimeoutMs);
      case "tcp" -> TcpTransport.create(2, fetchTimeoutMs);
      case "disni" -> DisniTransport.create(fetchTimeoutMs);
      case "auto" -> {
        try {
          yield UcxTransport.create(UcxTransport.DEFAULT_STAGING_BYTES, fetchTimeoutMs);
        } catch (PeerException e) {
          LOG.info(() -> "peers: ucx unavailable, using tcp: " + e.getMessage());
          yield TcpTransport.create(2, fetchTimeoutMs);
        }
      }
      default ->
          throw new IllegalArgumentException(
              "peer.transport=" + choice + " must be one of " + CHOICES);
    };
  }
}
