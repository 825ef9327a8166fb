package io.sluice.read;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;

/**
 * Where sample bytes come from: one implementation per storage path (posix, io_uring, s3, peer,
 * gds), all held to the same conformance suite. Implementations are thread-safe.
 */
public interface ReadBackend extends AutoCloseable {
  /** The name {@code --backend} selects and stats report. */
  String name();

  /** Opens a shard for positional reads. */
  ReadFile open(Path path) throws IOException;

  /**
   * Starts filling {@code dst} from its position to its limit with the bytes of {@code file} at
   * {@code offset}, as {@link ReadFile#readFully} would, without waiting: one thread can keep many
   * reads in flight. {@code dst} belongs to the read until the future completes (then its position
   * is at its limit); the caller must not touch or free it before.
   *
   * <p>Never throws: every failure (end of file, closed file, bad argument, I/O error) completes
   * the future exceptionally with the exception {@code readFully} would have thrown. Where the
   * future completes is up to the backend (io_uring: its ring thread): attach short, non-blocking
   * dependents, or use the {@code *Async} variants.
   *
   * <p>The default reads synchronously on the calling thread.
   *
   * @param file a file this backend opened
   */
  default CompletableFuture<Void> readAsync(ReadFile file, long offset, ByteBuffer dst) {
    try {
      file.readFully(offset, dst);
      return CompletableFuture.completedFuture(null);
    } catch (IOException | RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  /**
   * True when reads issued together with {@link #readAsync} finish sooner than the same reads one
   * after another (io_uring: one submission, many in flight). A format filling a batch then issues
   * all of the batch's reads before waiting; otherwise it reads in a plain loop, which is cheaper
   * for backends whose async path is a thread per read.
   */
  default boolean prefersBatches() {
    return false;
  }

  /**
   * True when every request costs far more than the bytes it moves (an object store: a round trip
   * and a request each). The read-ahead then reads whole chunks even for a step due now, instead of
   * the step's samples alone first: a trainer waits a little longer for its first bytes but the
   * link stays full. A read there crosses no sample it does not keep: the link's bytes are scarce
   * too, and bytes read to be dropped take its time from needed ones.
   */
  default boolean prefersLargeReads() {
    return false;
  }

  @Override
  void close();
}
