package io.sluice.s3;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.NonWritableChannelException;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.concurrent.CompletionException;

/**
 * An object opened as a read-only {@link FileChannel}, for the code that indexes a dataset (tar and
 * Arrow IPC scanners, index and manifest readers): positional reads through ranged GETs of whole
 * blocks, the last block kept, so a scanner's many small reads cost one request per block. {@link
 * #map(MapMode, long, long, Arena)} copies into the arena (an object cannot be mapped). One reader
 * thread at a time.
 */
final class S3ReadChannel extends FileChannel {
  static final int BLOCK_BYTES = 8 << 20;

  private final S3Store store;
  private final S3Store.ObjectInfo object;
  private long position;
  private ByteBuffer block; // the bytes of [blockStart, blockStart + block.limit())
  private long blockStart = -1;

  S3ReadChannel(S3Store store, S3Store.ObjectInfo object) {
    this.store = store;
    this.object = object;
  }

  @Override
  public int read(ByteBuffer dst, long at) throws IOException {
    ensureOpen();
    if (at < 0) {
      throw new IllegalArgumentException(
          "s3://" + object.bucket() + "/" + object.key() + " offset=" + at);
    }
    if (at >= object.sizeBytes()) {
      return -1;
    }
    if (!dst.hasRemaining()) {
      return 0;
    }
    int want = (int) Math.min(dst.remaining(), object.sizeBytes() - at);
    if (want >= BLOCK_BYTES) {
      ByteBuffer slice = dst.slice(dst.position(), want);
      fetch(at, slice);
      dst.position(dst.position() + want);
      return want;
    }
    if (block == null || at < blockStart || at >= blockStart + block.limit()) {
      long start = at - at % BLOCK_BYTES;
      int len = (int) Math.min(BLOCK_BYTES, object.sizeBytes() - start);
      ByteBuffer b =
          block != null && block.capacity() >= len ? block.clear() : ByteBuffer.allocate(len);
      b.limit(len);
      blockStart = -1;
      fetch(start, b);
      b.flip();
      block = b;
      blockStart = start;
    }
    int from = (int) (at - blockStart);
    int n = Math.min(want, block.limit() - from);
    dst.put(dst.position(), block, from, n);
    dst.position(dst.position() + n);
    return n;
  }

  private void fetch(long at, ByteBuffer into) throws IOException {
    try {
      store.read(object, at, into).join();
    } catch (CompletionException e) {
      throw S3Errors.toIOException(object.uri(), e);
    }
  }

  @Override
  public int read(ByteBuffer dst) throws IOException {
    int n = read(dst, position);
    if (n > 0) {
      position += n;
    }
    return n;
  }

  @Override
  public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
    long total = 0;
    for (int i = offset; i < offset + length; i++) {
      while (dsts[i].hasRemaining()) {
        int n = read(dsts[i]);
        if (n < 0) {
          return total == 0 ? -1 : total;
        }
        total += n;
      }
    }
    return total;
  }

  @Override
  public MemorySegment map(MapMode mode, long offset, long size, Arena arena) throws IOException {
    if (mode != MapMode.READ_ONLY) {
      throw new NonWritableChannelException();
    }
    if (offset < 0 || size < 0 || offset + size > object.sizeBytes()) {
      throw new EOFException(
          object.uri()
              + " offset="
              + offset
              + " length="
              + size
              + " past its end "
              + object.sizeBytes());
    }
    MemorySegment seg = arena.allocate(size, 64);
    // Fetched through a buffer of our own: the arena may be confined to this thread, and the
    // client writes from its own threads.
    ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(size, BLOCK_BYTES));
    for (long done = 0; done < size; ) {
      int n = (int) Math.min(chunk.capacity(), size - done);
      chunk.clear().limit(n);
      fetch(offset + done, chunk);
      MemorySegment.copy(MemorySegment.ofArray(chunk.array()), 0, seg, done, n);
      done += n;
    }
    return seg;
  }

  @Override
  public MappedByteBuffer map(MapMode mode, long position, long size) {
    throw new UnsupportedOperationException(object.uri() + ": objects cannot be mapped");
  }

  @Override
  public long position() {
    return position;
  }

  @Override
  public FileChannel position(long newPosition) {
    position = newPosition;
    return this;
  }

  @Override
  public long size() {
    return object.sizeBytes();
  }

  private void ensureOpen() throws IOException {
    if (!isOpen()) {
      throw new ClosedChannelException();
    }
  }

  @Override
  protected void implCloseChannel() {
    block = null;
  }

  // ---- writing: never, this channel is read-only ----

  @Override
  public int write(ByteBuffer src) {
    throw new NonWritableChannelException();
  }

  @Override
  public long write(ByteBuffer[] srcs, int offset, int length) {
    throw new NonWritableChannelException();
  }

  @Override
  public int write(ByteBuffer src, long at) {
    throw new NonWritableChannelException();
  }

  @Override
  public FileChannel truncate(long size) {
    throw new NonWritableChannelException();
  }

  @Override
  public void force(boolean metaData) {}

  @Override
  public long transferTo(long at, long count, WritableByteChannel target) throws IOException {
    ByteBuffer b = ByteBuffer.allocate((int) Math.min(count, BLOCK_BYTES));
    long done = 0;
    while (done < count) {
      b.clear().limit((int) Math.min(b.capacity(), count - done));
      int n = read(b, at + done);
      if (n <= 0) {
        break;
      }
      b.flip();
      while (b.hasRemaining()) {
        target.write(b);
      }
      done += n;
    }
    return done;
  }

  @Override
  public long transferFrom(ReadableByteChannel src, long at, long count) {
    throw new NonWritableChannelException();
  }

  @Override
  public FileLock lock(long at, long size, boolean shared) {
    throw new UnsupportedOperationException(object.uri() + ": objects cannot be locked");
  }

  @Override
  public FileLock tryLock(long at, long size, boolean shared) {
    throw new UnsupportedOperationException(object.uri() + ": objects cannot be locked");
  }
}
