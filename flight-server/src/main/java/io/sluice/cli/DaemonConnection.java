package io.sluice.cli;

import io.sluice.client.ProtocolException;
import io.sluice.client.SluiceClient;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import picocli.CommandLine.Option;

/**
 * {@code --server}, {@code --token-file} and {@code --tls-ca} for the commands that talk to a
 * running daemon; without the last two, {@code SLUICE_TOKEN} / {@code SLUICE_TOKEN_FILE} and {@code
 * SLUICE_TLS_CA} as the Python client reads them. A token is never taken from the command line,
 * where {@code ps} would show it.
 */
final class DaemonConnection {
  @Option(
      names = "--server",
      defaultValue = "grpc://127.0.0.1:8815",
      description = "Daemon address (default: ${DEFAULT-VALUE}); grpc+tls:// for TLS.")
  String server;

  @Option(
      names = "--token-file",
      paramLabel = "FILE",
      description =
          "File holding the bearer token the daemon requires (default: $SLUICE_TOKEN,"
              + " $SLUICE_TOKEN_FILE).")
  Path tokenFile;

  @Option(
      names = "--tls-ca",
      paramLabel = "FILE",
      description =
          "PEM certificates that sign the daemon's TLS certificate, for grpc+tls:// (default:"
              + " $SLUICE_TLS_CA, else the JVM's trust store).")
  Path tlsCa;

  /** Connects to {@link #server} with {@link #security()}. */
  SluiceClient connect(BufferAllocator allocator) {
    return SluiceClient.connect(server, allocator, security());
  }

  SluiceClient.Security security() {
    SluiceClient.Security env;
    try {
      env = SluiceClient.Security.fromEnvironment(System.getenv());
    } catch (ProtocolException e) {
      throw new UsageException(e.getMessage());
    }
    String token = env.token();
    if (tokenFile != null) {
      try {
        token = Files.readString(tokenFile, StandardCharsets.UTF_8).strip();
      } catch (IOException e) {
        throw new UsageException(
            "--token-file=" + tokenFile + " cannot be read: " + e.getMessage());
      }
    }
    return new SluiceClient.Security(token, tlsCa != null ? tlsCa : env.trustedCertificates());
  }
}
