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
   * Fills {@code dst} from its position to its limit with the bytes at {@code offset} and leaves
   * its position at its limit. A read that runs past the end of the file fails with an {@link
   * java.io.EOFException} naming the file, offset and lengths; a read after {@link #close()} fails
   * with an {@link IOException} naming the file. Direct buffers are read into in place; heap
   * buffers work too, through a direct bounce buffer (one extra copy). Read-only buffers and
   * negative offsets are refused with {@link IllegalArgumentException}.
   */
  void readFully(long offset, ByteBuffer dst) throws IOException;

  /**
   * Closes the file. A read racing with it either completes or fails naming the file. Idempotent.
   */
  @Override
  void close() throws IOException;
}
