package io.sluice.read;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Where sample bytes come from: one implementation per storage path (posix, io_uring, s3, peer,
 * gds), all held to the same conformance suite. Implementations are thread-safe.
 */
public interface ReadBackend extends AutoCloseable {
  /** The name {@code --backend} selects and stats report. */
  String name();

  /** Opens a shard for positional reads. */
  ReadFile open(Path path) throws IOException;

  @Override
  void close();
}
