package io.sluice.cli;

import io.sluice.read.ReadBackends;
import io.sluice.server.FlightTransport;
import picocli.CommandLine.Option;

/** {@code --transport} and {@code --backend}, shared by the commands that start a daemon. */
final class DataPlaneOptions {
  @Option(
      names = "--transport",
      defaultValue = "auto",
      description =
          "Netty transport for Flight: auto (io_uring where available, else nio), nio, io_uring"
              + " (default: ${DEFAULT-VALUE}).")
  String transport;

  @Option(
      names = "--backend",
      defaultValue = "auto",
      description =
          "Read backend: auto (io_uring where available, else posix), posix, io_uring,"
              + " io_uring+direct (O_DIRECT: cold data without the page cache's copy)"
              + " (default: ${DEFAULT-VALUE}).")
  String backend;

  FlightTransport transport() {
    try {
      return FlightTransport.parse(transport);
    } catch (IllegalArgumentException e) {
      throw new UsageException("--" + e.getMessage());
    }
  }

  String backend() {
    try {
      return ReadBackends.checkChoice(backend);
    } catch (IllegalArgumentException e) {
      throw new UsageException("--" + e.getMessage());
    }
  }
}
