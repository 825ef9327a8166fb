package io.sluice.read;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadFactory;

/**
 * Positional reads through {@link FileChannel}: always available, the fallback for every path.
 *
 * <p>{@link #readAsync} runs each read on its own virtual thread, so a prefetcher gets parallel I/O
 * here too; file reads pin their carrier, and the JDK adds carriers while they block (up to {@code
 * jdk.virtualThreadScheduler.maxPoolSize}, 256 by default). Heap buffers go through the JDK's
 * per-thread direct buffer cache.
 */
public final class PosixReadBackend implements ReadBackend {
  public static final String NAME = "posix";
  private static final ThreadFactory READERS =
      Thread.ofVirtual().name("sluice-posix-read").factory();

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public ReadFile open(Path path) throws IOException {
    FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
    return new PosixFile(path, ch, ch.size());
  }

  @Override
  public CompletableFuture<Void> readAsync(ReadFile file, long offset, ByteBuffer dst) {
    CompletableFuture<Void> done = new CompletableFuture<>();
    READERS
        .newThread(
            () -> {
              try {
                file.readFully(offset, dst);
                done.complete(null);
              } catch (Throwable t) {
                done.completeExceptionally(t);
              }
            })
        .start();
    return done;
  }

  @Override
  public void close() {}

  private record PosixFile(Path path, FileChannel channel, long lengthBytes) implements ReadFile {
    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      ReadChecks.check(path, offset, dst);
      long pos = offset;
      int wanted = dst.remaining();
      try {
        if (!channel.isOpen()) {
          throw new ClosedChannelException();
        }
        while (dst.hasRemaining()) {
          int n = channel.read(dst, pos);
          if (n < 0) {
            throw ReadChecks.endOfFile(path, offset, wanted, channel.size());
          }
          pos += n;
        }
      } catch (ClosedByInterruptException e) {
        throw new IOException(
            "file="
                + path
                + " offset="
                + offset
                + ": interrupted during read; FileChannel closes the file for every reader",
            e);
      } catch (ClosedChannelException e) { // includes a close racing with this read
        throw ReadChecks.closed(path, offset, e);
      }
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }
}
