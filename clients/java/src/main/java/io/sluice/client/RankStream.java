package io.sluice.client;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * One rank's batches for one epoch. {@link #next()} moves to the next batch; {@link #root()} holds
 * it until the following call. A {@code shm} batch is read in place from the daemon's shared memory
 * and released to the daemon at the following call. A {@code cuda} batch lies on the GPU ({@link
 * #metadata()}{@code .cuda()} says where; this client does not read device memory, the root holds
 * no rows) and is released at the following call the same way. Close it to end the stream early
 * (the daemon is told to stop). Owned by one thread.
 */
public final class RankStream implements AutoCloseable {
  private final StreamRequest request;
  private final FlightStream stream;
  private final BufferAllocator allocator;
  private ShmImporter shm;
  private VectorSchemaRoot current;
  private BatchMetadata metadata;
  private boolean done;
  private Arena controlArena; // the mapped control file of a cuda stream
  private MemorySegment control;
  private long heldCudaSeq = -1;

  RankStream(StreamRequest request, FlightStream stream, BufferAllocator allocator) {
    this.request = request;
    this.stream = stream;
    this.allocator = allocator;
  }

  public StreamRequest request() {
    return request;
  }

  /** Advances to the next batch; false at the end of the epoch. */
  public boolean next() {
    if (done) {
      return false;
    }
    if (shm != null) {
      shm.releaseCurrent();
    }
    if (heldCudaSeq >= 0) {
      ShmLayout.release(control, heldCudaSeq);
      heldCudaSeq = -1;
    }
    if (!stream.next()) {
      done = true;
      return false;
    }
    ArrowBuf meta = stream.getLatestMetadata();
    if (meta == null) {
      throw new ProtocolException("app_metadata", "batch arrived without app_metadata");
    }
    long length = meta.readableBytes() > 0 ? meta.readableBytes() : meta.capacity();
    byte[] bytes = new byte[Math.toIntExact(length)];
    meta.getBytes(0, bytes);
    metadata = BatchMetadata.parse(bytes);
    if (metadata.shm() != null) {
      if (shm == null) {
        shm = new ShmImporter(stream.getRoot().getSchema(), allocator);
      }
      current = shm.load(metadata.shm());
    } else if (metadata.cuda() != null) {
      if (control == null) {
        mapControl(metadata.cuda().control());
      }
      heldCudaSeq = metadata.cuda().seq();
      current = stream.getRoot();
    } else {
      current = stream.getRoot();
    }
    return true;
  }

  private void mapControl(String path) {
    Arena arena = Arena.ofShared();
    try {
      MemorySegment header = ShmLayout.mapShared(path, ShmLayout.HEADER_BYTES, arena);
      ShmLayout.checkHeader(header, path);
      ShmLayout.detach(header); // this client never maps the device pool
      controlArena = arena;
      control = header;
    } catch (IOException | RuntimeException e) {
      arena.close();
      throw new ProtocolException(
          "cuda.control", "cannot map the cuda stream's control file " + path + ": " + e, e);
    }
  }

  /** The current batch; valid until the next call to {@link #next()}. */
  public VectorSchemaRoot root() {
    return current != null ? current : stream.getRoot();
  }

  /** The current batch's metadata. */
  public BatchMetadata metadata() {
    return metadata;
  }

  @Override
  public void close() {
    if (!done) {
      stream.cancel("client closed the stream", null);
    }
    if (shm != null) {
      shm.close();
    }
    if (controlArena != null) {
      controlArena.close();
    }
    try {
      stream.close();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException("closing the stream failed: " + e.getMessage(), e);
    }
  }
}
