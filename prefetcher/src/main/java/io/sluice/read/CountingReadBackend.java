package io.sluice.read;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.LongAdder;

/**
 * A backend that counts what another one reads: bytes and reads that completed, by every path
 * (read-ahead, a stream's demand reads, formats filling batches). The daemon's metrics read the
 * counts ({@code sluice_bytes_read_total}). Files it opens must be read through it.
 */
public final class CountingReadBackend implements ReadBackend {
  private final ReadBackend delegate;
  private final LongAdder bytes = new LongAdder();
  private final LongAdder reads = new LongAdder();

  public CountingReadBackend(ReadBackend delegate) {
    this.delegate = delegate;
  }

  /** Bytes read to completion since start. */
  public long bytesRead() {
    return bytes.sum();
  }

  /** Reads completed since start. */
  public long reads() {
    return reads.sum();
  }

  @Override
  public String name() {
    return delegate.name();
  }

  @Override
  public ReadFile open(Path path) throws IOException {
    return new Counted(delegate.open(path));
  }

  @Override
  public CompletableFuture<Void> readAsync(ReadFile file, long offset, ByteBuffer dst) {
    long n = dst.remaining();
    ReadFile inner = file instanceof Counted c ? c.inner : file;
    return delegate
        .readAsync(inner, offset, dst)
        .whenComplete(
            (ok, failed) -> {
              if (failed == null) {
                reads.increment();
                bytes.add(n);
              }
            });
  }

  @Override
  public boolean prefersBatches() {
    return delegate.prefersBatches();
  }

  @Override
  public boolean prefersLargeReads() {
    return delegate.prefersLargeReads();
  }

  @Override
  public void close() {
    delegate.close();
  }

  private final class Counted implements ReadFile {
    private final ReadFile inner;

    Counted(ReadFile inner) {
      this.inner = inner;
    }

    @Override
    public Path path() {
      return inner.path();
    }

    @Override
    public long lengthBytes() {
      return inner.lengthBytes();
    }

    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      long n = dst.remaining();
      inner.readFully(offset, dst);
      reads.increment();
      bytes.add(n);
    }

    @Override
    public void close() throws IOException {
      inner.close();
    }
  }
}
