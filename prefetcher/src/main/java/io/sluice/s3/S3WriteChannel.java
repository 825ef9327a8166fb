package io.sluice.s3;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.NonReadableChannelException;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.Arrays;

/**
 * A new object written as a {@link FileChannel}: bytes gather in memory and go up in one PUT when
 * the channel closes (objects are written whole). For the small files a dataset's index step writes
 * (manifest, per-shard indexes), not for data. One writer thread.
 */
final class S3WriteChannel extends FileChannel {
  private final S3FileSystem fs;
  private final S3Path path;
  private byte[] bytes = new byte[64 << 10];
  private int length;
  private int position;

  S3WriteChannel(S3FileSystem fs, S3Path path) {
    this.fs = fs;
    this.path = path;
  }

  @Override
  public int write(ByteBuffer src, long at) throws IOException {
    if (!isOpen()) {
      throw new ClosedChannelException();
    }
    if (at > Integer.MAX_VALUE - 16 - src.remaining()) {
      throw new IOException(path + ": metadata objects are kept under 2 GiB");
    }
    int n = src.remaining();
    int end = (int) at + n;
    if (end > bytes.length) {
      bytes =
          Arrays.copyOf(bytes, Math.max(end, Math.min(Integer.MAX_VALUE - 16, bytes.length * 2)));
    }
    src.get(bytes, (int) at, n);
    length = Math.max(length, end);
    return n;
  }

  @Override
  public int write(ByteBuffer src) throws IOException {
    int n = write(src, position);
    position += n;
    return n;
  }

  @Override
  public long write(ByteBuffer[] srcs, int offset, int len) throws IOException {
    long total = 0;
    for (int i = offset; i < offset + len; i++) {
      total += write(srcs[i]);
    }
    return total;
  }

  @Override
  protected void implCloseChannel() throws IOException {
    fs.put(path, Arrays.copyOf(bytes, length));
    bytes = null;
  }

  @Override
  public long position() {
    return position;
  }

  @Override
  public FileChannel position(long newPosition) {
    position = (int) Math.min(Integer.MAX_VALUE - 16, newPosition);
    return this;
  }

  @Override
  public long size() {
    return length;
  }

  @Override
  public FileChannel truncate(long size) {
    length = (int) Math.min(length, size);
    position = Math.min(position, length);
    return this;
  }

  @Override
  public void force(boolean metaData) {}

  // ---- reading: never, this channel only writes ----

  @Override
  public int read(ByteBuffer dst) {
    throw new NonReadableChannelException();
  }

  @Override
  public long read(ByteBuffer[] dsts, int offset, int len) {
    throw new NonReadableChannelException();
  }

  @Override
  public int read(ByteBuffer dst, long at) {
    throw new NonReadableChannelException();
  }

  @Override
  public long transferTo(long at, long count, WritableByteChannel target) {
    throw new NonReadableChannelException();
  }

  @Override
  public long transferFrom(ReadableByteChannel src, long at, long count) throws IOException {
    ByteBuffer b = ByteBuffer.allocate((int) Math.min(count, 1 << 20));
    long done = 0;
    while (done < count) {
      b.clear().limit((int) Math.min(b.capacity(), count - done));
      int n = src.read(b);
      if (n <= 0) {
        break;
      }
      b.flip();
      write(b, at + done);
      done += n;
    }
    return done;
  }

  @Override
  public MappedByteBuffer map(MapMode mode, long at, long size) {
    throw new UnsupportedOperationException(path + ": objects cannot be mapped");
  }

  @Override
  public FileLock lock(long at, long size, boolean shared) {
    throw new UnsupportedOperationException(path + ": objects cannot be locked");
  }

  @Override
  public FileLock tryLock(long at, long size, boolean shared) {
    throw new UnsupportedOperationException(path + ": objects cannot be locked");
  }
}
