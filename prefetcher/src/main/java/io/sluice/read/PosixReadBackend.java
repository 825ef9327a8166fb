package io.sluice.read;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** Positional reads through {@link FileChannel}: always available, the fallback for every path. */
public final class PosixReadBackend implements ReadBackend {
  public static final String NAME = "posix";

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
  public void close() {}

  private record PosixFile(Path path, FileChannel channel, long lengthBytes) implements ReadFile {
    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      long pos = offset;
      int wanted = dst.remaining();
      while (dst.hasRemaining()) {
        int n = channel.read(dst, pos);
        if (n < 0) {
          throw new EOFException(
              "file="
                  + path
                  + " offset="
                  + offset
                  + ": wanted "
                  + wanted
                  + " bytes, file ends at "
                  + channel.size()
                  + " (changed since indexing?)");
        }
        pos += n;
      }
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }
}
