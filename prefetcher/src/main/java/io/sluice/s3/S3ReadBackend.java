package io.sluice.s3;

import io.sluice.read.ReadBackend;
import io.sluice.read.ReadChecks;
import io.sluice.read.ReadFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Reads shards straight from an S3-compatible store: each read is one ranged GET (the prefetcher
 * sizes them to the plan's coalesced ranges), many in flight, retried and hedged by the {@link
 * S3Store}. Opening a shard checks it is there; the format has already held its size and ETag
 * against the manifest, and every GET carries that ETag ({@code If-Match}), so an object replaced
 * since fails its reads naming it instead of serving other bytes.
 */
public final class S3ReadBackend implements ReadBackend {
  public static final String NAME = "s3";

  /** Never started: a thread that owns no arena, to ask whether a buffer is confined. */
  private static final Thread OTHER_THREAD = Thread.ofPlatform().unstarted(() -> {});

  private final S3FileSystem fs;

  public S3ReadBackend(S3FileSystem fs) {
    this.fs = fs;
  }

  @Override
  public String name() {
    return NAME;
  }

  /** Opens an object of this backend's file system ({@link S3FileSystem#path}). */
  @Override
  public ReadFile open(Path path) throws IOException {
    if (!(path instanceof S3Path p) || p.getFileSystem() != fs) {
      throw new IllegalArgumentException("path=" + path + " is not an S3 path of this backend");
    }
    S3Store.ObjectInfo o = fs.object(p);
    if (o == null) {
      throw new NoSuchFileException(path.toString(), null, "no such object");
    }
    return new S3File(p, o);
  }

  @Override
  public CompletableFuture<Void> readAsync(ReadFile file, long offset, ByteBuffer dst) {
    if (!(file instanceof S3File f)) {
      return CompletableFuture.failedFuture(
          new IllegalArgumentException(
              "file=" + file.path() + " was not opened by the s3 backend"));
    }
    try {
      f.check(offset, dst);
    } catch (IOException | RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
    if (confined(dst)) {
      return CompletableFuture.failedFuture(
          new IllegalArgumentException(
              "file="
                  + f.path
                  + " offset="
                  + offset
                  + ": the buffer is confined to its thread and the s3 backend writes from its"
                  + " own; use readFully or shared memory"));
    }
    return fs.store().read(f.object, offset, dst);
  }

  /** True for a direct buffer only its owner thread may touch (a confined arena's memory). */
  private static boolean confined(ByteBuffer b) {
    return b.isDirect() && !MemorySegment.ofBuffer(b).isAccessibleBy(OTHER_THREAD);
  }

  /** Every read is a request in flight: issue a batch's reads together, then wait. */
  @Override
  public boolean prefersBatches() {
    return true;
  }

  /** A GET costs a round trip whatever its size: read ahead in whole chunks. */
  @Override
  public boolean prefersLargeReads() {
    return true;
  }

  @Override
  public void close() {}

  private final class S3File implements ReadFile {
    private final S3Path path;
    private final S3Store.ObjectInfo object;
    private volatile boolean closed;

    S3File(S3Path path, S3Store.ObjectInfo object) {
      this.path = path;
      this.object = object;
    }

    @Override
    public Path path() {
      return path;
    }

    @Override
    public long lengthBytes() {
      return object.sizeBytes();
    }

    void check(long offset, ByteBuffer dst) throws IOException {
      ReadChecks.check(path, offset, dst);
      if (closed) {
        throw ReadChecks.closed(path, offset, null);
      }
      if (offset + dst.remaining() > object.sizeBytes()) {
        throw ReadChecks.endOfFile(path, offset, dst.remaining(), object.sizeBytes());
      }
    }

    /**
     * Reads on the client's threads; a buffer confined to the calling thread (a confined arena's)
     * is filled through a heap buffer of the same size, copied on this thread.
     */
    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      check(offset, dst);
      ByteBuffer target = confined(dst) ? ByteBuffer.allocate(dst.remaining()) : dst;
      try {
        fs.store().read(object, offset, target).join();
      } catch (CompletionException e) {
        throw S3Errors.toIOException(path.toString(), e);
      }
      if (target != dst) {
        dst.put(target.flip());
      }
    }

    @Override
    public void close() {
      closed = true;
    }
  }
}
