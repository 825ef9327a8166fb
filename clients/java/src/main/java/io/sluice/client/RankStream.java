package io.sluice.client;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.logging.Logger;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
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
 * (the daemon is told to stop). Opened with a reconnect timeout ({@link
 * SluiceClient#open(StreamRequest, java.time.Duration)}), it rides out a daemon restart. Owned by
 * one thread.
 */
public final class RankStream implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(RankStream.class.getName());
  private static final long FIRST_DELAY_MS = 100;
  private static final long MAX_DELAY_MS = 2000;
  // Longer timeouts wait this long: a deadline in nanoseconds must not overflow.
  private static final Duration LONGEST = Duration.ofDays(365 * 100L);

  private final StreamRequest request;
  private FlightStream stream;
  private final BufferAllocator allocator;
  private final SluiceClient origin;
  private final Duration reconnectTimeout;
  private SluiceClient own; // the connection a reopen made; closed with this stream
  private int reconnects;
  // A break starts a deadline; a batch clears it. openedAt: the position last reopened at.
  private long deadlineNanos = -1;
  private long openedAt = -1;
  private long delayMs = FIRST_DELAY_MS;
  private boolean discarded; // the stream broke and was closed; no new one opened yet
  private RuntimeException failed; // why it gave up: every later next() throws it again
  private boolean closed;
  private ShmImporter shm;
  private VectorSchemaRoot current;
  private BatchMetadata metadata;
  private boolean done;
  private Arena controlArena; // the mapped control file of a cuda stream
  private MemorySegment control;
  private long heldCudaSeq = -1;

  RankStream(
      StreamRequest request,
      FlightStream stream,
      BufferAllocator allocator,
      SluiceClient origin,
      Duration reconnectTimeout) {
    this.request = request;
    this.stream = stream;
    this.allocator = allocator;
    this.origin = origin;
    this.reconnectTimeout = reconnectTimeout.compareTo(LONGEST) > 0 ? LONGEST : reconnectTimeout;
  }

  public StreamRequest request() {
    return request;
  }

  /**
   * Advances to the next batch; false at the end of the epoch. A stream that broke off and was not
   * (or could not be) opened again throws its failure, with why it gave up as a suppressed
   * exception, and throws it again at every later call.
   */
  public boolean next() {
    if (failed != null) {
      throw failed;
    }
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
    while (true) {
      try {
        if (!stream.next()) {
          done = true;
          return false;
        }
        break;
      } catch (FlightRuntimeException e) {
        if (e.status().code() != FlightStatusCode.UNAVAILABLE) {
          throw e;
        }
        reopen(e);
      }
    }
    deadlineNanos = -1; // a batch came: the next break starts afresh
    delayMs = FIRST_DELAY_MS;
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

  /** How many times this stream was opened again after breaking off. */
  public int reconnects() {
    return reconnects;
  }

  /** The global cursor to resume from: after the last batch returned, else where it started. */
  public long position() {
    return metadata != null ? metadata.cursor() : request.startCursor();
  }

  /**
   * Opens the stream again at {@link #position()} after {@code broke}, or throws {@code broke}
   * (with why not, suppressed) when the timeout is zero or spent, the daemon refused, or it broke
   * at the same position right after opening there.
   */
  private void reopen(FlightRuntimeException broke) {
    long at = position();
    String where =
        "dataset="
            + request.dataset()
            + " rank="
            + request.rank()
            + " epoch="
            + request.epoch()
            + " cursor="
            + at;
    if (reconnectTimeout.isZero()) {
      throw giveUp(broke, where, "reconnect timeout 0: not opened again");
    }
    if (openedAt == at) {
      throw giveUp(
          broke, where, "opened again there, it broke off again before a batch: not a restart");
    }
    long now = System.nanoTime();
    if (deadlineNanos < 0) {
      deadlineNanos = now + reconnectTimeout.toNanos();
      reconnects++;
      LOG.warning(
          "the stream from "
              + origin.uri()
              + " broke off at "
              + where
              + " ("
              + firstLine(broke.getMessage())
              + "); opening it again there for up to "
              + seconds(reconnectTimeout));
    }
    discardStream();
    FlightRuntimeException last = broke;
    while (true) {
      long left = deadlineNanos - System.nanoTime();
      if (left <= 0) {
        throw giveUp(
            last,
            where,
            "could not open it again in reconnect timeout " + seconds(reconnectTimeout));
      }
      try {
        Thread.sleep(Math.min(delayMs, Math.max(1, left / 1_000_000)));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw giveUp(last, where, "interrupted while waiting to open it again");
      }
      delayMs = Math.min(MAX_DELAY_MS, delayMs * 2);
      SluiceClient fresh = null;
      boolean answered = false;
      try {
        fresh = origin.reconnected();
        fresh.datasets(); // answers only when a daemon is up there
        answered = true;
        // A restarted daemon has a new shm token: the fresh client asks for it.
        FlightStream reopened = fresh.openStream(request.withStartCursor(at).withShmToken(null));
        closeOwn();
        own = fresh;
        stream = reopened;
        discarded = false;
        openedAt = at;
        return;
      } catch (FlightRuntimeException e) {
        if (fresh != null) {
          fresh.close();
        }
        last = e;
        if (Thread.currentThread().isInterrupted()) {
          throw giveUp(e, where, "interrupted while opening it again"); // gRPC said CANCELLED
        }
        boolean stopping = e.getMessage() != null && e.getMessage().contains("shutting down");
        if (e.status().code() != FlightStatusCode.UNAVAILABLE || (answered && !stopping)) {
          // The daemon is up and refuses the stream (a dataset rewritten, delivery impossible).
          throw giveUp(e, where, "the daemon answered and refused the stream: given up");
        }
      } catch (RuntimeException e) {
        if (fresh != null) {
          fresh.close();
        }
        failed = e; // the broken stream is closed: no later next() may pass for the epoch's end
        throw e;
      }
    }
  }

  private FlightRuntimeException giveUp(FlightRuntimeException e, String where, String why) {
    failed = e;
    e.addSuppressed(
        new ProtocolException(
            "reconnect",
            "the stream from " + origin.uri() + " broke off at " + where + "; " + why));
    return e;
  }

  private static String seconds(Duration d) {
    return java.math.BigDecimal.valueOf(d.toMillis(), 3).stripTrailingZeros().toPlainString()
        + " s";
  }

  private static String firstLine(String s) {
    if (s == null) {
      return "no message";
    }
    int nl = s.indexOf('\n');
    return nl < 0 ? s : s.substring(0, nl);
  }

  /** Drops the broken stream and what was imported from its daemon's shared memory. */
  private void discardStream() {
    releaseImports();
    heldCudaSeq = -1;
    discarded = true;
    try {
      stream.close();
    } catch (Exception e) {
      // A broken stream may fail its own close; what it held is released either way.
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Unmaps the shm regions and the cuda control file this stream mapped; the batch goes too. */
  private void releaseImports() {
    if (shm != null) {
      shm.close();
      shm = null;
    }
    if (controlArena != null) {
      controlArena.close();
      controlArena = null;
      control = null;
    }
    current = null;
  }

  private void closeOwn() {
    if (own != null) {
      own.close();
      own = null;
    }
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
    if (closed) {
      return;
    }
    closed = true;
    if (!done && !discarded) {
      stream.cancel("client closed the stream", null);
    }
    releaseImports();
    try {
      if (!discarded) {
        stream.close();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException("closing the stream failed: " + e.getMessage(), e);
    } finally {
      closeOwn();
    }
  }
}
