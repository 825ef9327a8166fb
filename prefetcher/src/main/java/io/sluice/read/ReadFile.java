package io.sluice.read;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/** An open shard: positional reads, safe from many threads at once. */
public interface ReadFile extends AutoCloseable {
  Path path();

  /** Length in bytes when opened. */
  long lengthBytes();

  /**
   * Fills {@code dst} from its position to its limit with the bytes at {@code offset}. A read that
   * runs past the end of the file fails naming the file, offset and lengths.
   */
  void readFully(long offset, ByteBuffer dst) throws IOException;

  @Override
  void close() throws IOException;
}
