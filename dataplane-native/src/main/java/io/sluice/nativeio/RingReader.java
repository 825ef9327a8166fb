package io.sluice.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Positional reads from any number of threads through one io_uring, owned by one thread (the ring
 * thread); up to {@code queueDepth} reads in flight.
 *
 * <p>Callers hand a request over a lock-free queue and get a {@link CompletableFuture}. The ring
 * thread moves requests into SQEs, submits them and blocks in {@code io_uring_enter} until a
 * completion arrives, then completes the futures: short reads are resubmitted for the remainder,
 * {@code -EAGAIN} and {@code -EINTR} are retried, other errors fail the future with a {@link
 * NativeIoException} naming the file, offset, length and errno. A read that reaches end of file
 * completes with fewer bytes than asked; the caller decides whether that is an error.
 *
 * <p>Wake-up: while blocked the ring thread always has one read armed on an eventfd; a caller that
 * queues a request while the ring thread sleeps writes to the eventfd (one syscall per sleep, not
 * per request).
 *
 * <p>Futures complete on the ring thread: dependents attached with non-async methods ({@code
 * thenApply}, {@code whenComplete}) run there, so they must be short and must never block.
 */
public final class RingReader implements AutoCloseable {
  public static final int MAX_QUEUE_DEPTH = 4096;
  private static final Logger LOG = Logger.getLogger(RingReader.class.getName());
  private static final long WAKE = -1L; // user_data of the eventfd read
  private static final int MAX_RETRIES = 100; // EAGAIN / EINTR resubmits per request
  private static final VarHandle SLEEPING;
  private static final VarHandle CLOSING;

  static {
    try {
      MethodHandles.Lookup l = MethodHandles.lookup();
      SLEEPING = l.findVarHandle(RingReader.class, "sleeping", boolean.class);
      CLOSING = l.findVarHandle(RingReader.class, "closing", boolean.class);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  private final String name;
  private final int queueDepth;
  private final ConcurrentLinkedQueue<Request> inbound = new ConcurrentLinkedQueue<>();
  private final CompletableFuture<Void> started = new CompletableFuture<>();
  private final Thread thread;
  private final Object wakeLock = new Object();
  private final MemorySegment one; // the eventfd increment
  private final int eventFd; // closed by the ring thread as it ends
  private boolean eventFdOpen = true; // guarded by wakeLock

  private volatile boolean sleeping;
  private volatile boolean closing;
  private volatile boolean terminated;
  private volatile Throwable failure;

  // Ring thread only.
  private Ring ring;
  private final Request[] slots;
  private final int[] freeSlots;
  private int freeCount;
  private int inFlight;
  private boolean wakeArmed;
  private MemorySegment wakeBuffer;

  private RingReader(String name, int queueDepth, int eventFd) {
    this.name = name;
    this.queueDepth = queueDepth;
    this.eventFd = eventFd;
    this.one = Arena.ofAuto().allocate(ValueLayout.JAVA_LONG);
    one.set(ValueLayout.JAVA_LONG, 0, 1L);
    this.slots = new Request[queueDepth];
    this.freeSlots = new int[queueDepth];
    for (int i = 0; i < queueDepth; i++) {
      freeSlots[freeCount++] = queueDepth - 1 - i;
    }
    this.thread = Thread.ofPlatform().name(name).daemon(true).unstarted(this::run);
  }

  /**
   * Opens a ring and starts its thread.
   *
   * @param threadName the ring thread's name
   * @param queueDepth reads in flight at most, 1 to {@value #MAX_QUEUE_DEPTH}; more wait in a queue
   * @throws UnsupportedOperationException when io_uring is unavailable (cause chained)
   * @throws IOException when the ring cannot be set up (errno named)
   */
  public static RingReader start(String threadName, int queueDepth) throws IOException {
    IoUring.ensureAvailability();
    if (queueDepth < 1 || queueDepth > MAX_QUEUE_DEPTH) {
      throw new IllegalArgumentException(
          "queueDepth=" + queueDepth + " must be in [1, " + MAX_QUEUE_DEPTH + "]");
    }
    int efd;
    try (Arena a = Arena.ofConfined()) {
      MemorySegment callState = LibC.newCallState(a);
      efd = LibC.eventfd(callState, 0, LibC.EFD_CLOEXEC);
      if (efd < 0) {
        throw new NativeIoException("eventfd", LibC.errno(callState));
      }
    }
    RingReader reader = new RingReader(threadName, queueDepth, efd);
    reader.thread.start();
    try {
      reader.started.join();
    } catch (RuntimeException e) {
      reader.close();
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      throw new IOException("io_uring ring " + threadName + " failed to start: " + cause, cause);
    }
    return reader;
  }

  public int queueDepth() {
    return queueDepth;
  }

  /** Whether the caller is the ring thread, which must never wait for a read. */
  public boolean isRingThread() {
    return Thread.currentThread() == thread;
  }

  /**
   * Reads up to {@code dst.byteSize()} bytes at file {@code offset} into {@code dst}, which must be
   * native memory that stays alive and untouched until the future completes. The future completes
   * on the ring thread with the bytes read: all of them, or fewer at end of file.
   *
   * @param fd an open descriptor the caller keeps open until the future completes
   * @param alignBytes 1 for buffered files; for {@code O_DIRECT} the offset alignment, so that a
   *     short read ending off alignment is taken as end of file rather than resubmitted misaligned
   * @param file names the file in error messages
   */
  public CompletableFuture<Integer> read(
      int fd, MemorySegment dst, long offset, int alignBytes, String file) {
    CompletableFuture<Integer> future = new CompletableFuture<>();
    if (!dst.isNative() || dst.byteSize() > Integer.MAX_VALUE || offset < 0 || alignBytes < 1) {
      future.completeExceptionally(
          new IllegalArgumentException(
              "file="
                  + file
                  + " offset="
                  + offset
                  + " length="
                  + dst.byteSize()
                  + " alignBytes="
                  + alignBytes
                  + ": need native memory of at most 2 GiB, offset >= 0, alignBytes >= 1"));
      return future;
    }
    if (dst.byteSize() == 0) {
      future.complete(0);
      return future;
    }
    Request r = new Request(fd, dst, (int) dst.byteSize(), offset, alignBytes, file, future);
    if (closing) {
      future.completeExceptionally(closedException(r));
      return future;
    }
    inbound.offer(r);
    if (terminated) {
      failQueued(); // the ring thread may have drained the queue before this offer
    } else if (sleeping && SLEEPING.compareAndSet(this, true, false)) {
      wake();
    }
    return future;
  }

  private void wake() {
    synchronized (wakeLock) {
      if (eventFdOpen && LibC.write(eventFd, one, Long.BYTES) != Long.BYTES) {
        // Cannot happen short of a bug: the counter would need to reach 2^64 - 1.
        LOG.warning(() -> "ring " + name + ": eventfd write failed");
      }
    }
  }

  private void run() {
    try (Arena arena = Arena.ofConfined()) {
      try {
        ring = openRing(queueDepth + 1);
        wakeBuffer = arena.allocate(Long.BYTES, Long.BYTES);
      } catch (Throwable t) {
        failure = t;
        started.completeExceptionally(t);
        return;
      }
      started.complete(null);
      try {
        loop();
      } catch (Throwable t) {
        failure = t;
        LOG.log(Level.SEVERE, "ring " + name + " failed; failing its reads", t);
        for (int slot = 0; slot < slots.length; slot++) {
          if (slots[slot] != null) {
            fail(slot, new IOException(slots[slot].describe() + ": io_uring ring failed", t));
          }
        }
      } finally {
        ring.close();
      }
    } finally {
      terminated = true;
      failQueued();
      synchronized (wakeLock) {
        eventFdOpen = false; // callers check this under the lock: no write to a reused fd number
        try (Arena a = Arena.ofConfined()) {
          LibC.close(LibC.newCallState(a), eventFd);
        }
      }
    }
  }

  private static Ring openRing(int entries) throws NativeIoException {
    try {
      // One submitter and completions run only when it asks: cheaper completions (Linux 6.1+).
      return Ring.open(
          entries,
          RingDescriptor.IORING_SETUP_SINGLE_ISSUER | RingDescriptor.IORING_SETUP_DEFER_TASKRUN);
    } catch (NativeIoException e) {
      if (e.errno() != Errno.EINVAL) {
        throw e;
      }
      return Ring.open(entries);
    }
  }

  private void loop() throws NativeIoException {
    armWake();
    while (true) {
      if (closing) {
        failQueued();
        if (inFlight == 0 && !wakeArmed) {
          return;
        }
      } else {
        fill();
      }
      // Publish "sleeping" before the last look at the queue: a caller that queues after this
      // look sees the flag and wakes us through the eventfd (no lost wake-up).
      SLEEPING.setVolatile(this, true);
      boolean more = !closing && freeCount > 0 && !inbound.isEmpty();
      if (more) {
        sleeping = false;
      }
      ring.submitAndWait(more ? 0 : 1);
      sleeping = false;
      ring.reap(this::onCompletion);
    }
  }

  private void fill() {
    Request r;
    while (freeCount > 0 && (r = inbound.poll()) != null) {
      int slot = freeSlots[--freeCount];
      slots[slot] = r;
      inFlight++;
      submit(slot, r);
    }
  }

  private void submit(int slot, Request r) {
    // Cannot fail: the SQ has more entries than slots plus the wake read, and every loop submits.
    if (!ring.prepareRead(
        r.fd, r.dst.address() + r.done, r.length - r.done, r.offset + r.done, slot)) {
      throw new IllegalStateException("ring " + name + ": submission queue full");
    }
  }

  private void armWake() {
    if (!ring.prepareRead(eventFd, wakeBuffer.address(), Long.BYTES, 0, WAKE)) {
      throw new IllegalStateException("ring " + name + ": submission queue full");
    }
    wakeArmed = true;
  }

  private void onCompletion(long userData, int result, int flags) {
    if (userData == WAKE) {
      wakeArmed = false;
      if (result < 0 && result != -Errno.EINTR && result != -Errno.EAGAIN) {
        throw new IllegalStateException(
            "ring " + name + ": eventfd read failed: errno=" + Errno.describe(-result));
      }
      if (!closing) {
        armWake();
      }
      return;
    }
    int slot = (int) userData;
    Request r = slots[slot];
    if (result > 0) {
      r.done += result;
      if (r.done == r.length || r.done % r.alignBytes != 0) {
        complete(slot); // all of it, or O_DIRECT stopped off alignment: end of file
      } else {
        submit(slot, r); // short read: the rest
      }
    } else if (result == 0) {
      complete(slot); // end of file
    } else if ((result == -Errno.EAGAIN || result == -Errno.EINTR) && ++r.retries <= MAX_RETRIES) {
      submit(slot, r);
    } else {
      fail(slot, new NativeIoException(r.describe(), -result));
    }
  }

  private void complete(int slot) {
    Request r = release(slot);
    r.future.complete(r.done);
  }

  private void fail(int slot, Throwable t) {
    release(slot).future.completeExceptionally(t);
  }

  private Request release(int slot) {
    Request r = slots[slot];
    slots[slot] = null;
    freeSlots[freeCount++] = slot;
    inFlight--;
    return r;
  }

  private void failQueued() {
    Request r;
    while ((r = inbound.poll()) != null) {
      r.future.completeExceptionally(closedException(r));
    }
  }

  private IOException closedException(Request r) {
    Throwable f = failure;
    return f == null
        ? new IOException(r.describe() + ": io_uring ring " + name + " is closed")
        : new IOException(r.describe() + ": io_uring ring " + name + " failed", f);
  }

  /**
   * Stops taking reads, fails those not yet submitted, waits for those in flight (their buffers
   * stay in use until then), and releases the ring. Idempotent.
   */
  @Override
  public void close() {
    if (CLOSING.compareAndSet(this, false, true)) {
      wake();
    }
    if (Thread.currentThread() == thread) {
      return; // a dependent running on the ring thread: it ends after this completion
    }
    boolean interrupted = false;
    while (thread.isAlive()) {
      try {
        thread.join();
      } catch (InterruptedException e) {
        interrupted = true; // in-flight reads still own their buffers: keep waiting
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public String toString() {
    return "RingReader[" + name + " queueDepth=" + queueDepth + "]";
  }

  private static final class Request {
    final int fd;
    final MemorySegment dst; // also keeps the caller's buffer reachable while in flight
    final int length;
    final long offset;
    final int alignBytes;
    final String file;
    final CompletableFuture<Integer> future;
    int done;
    int retries;

    Request(
        int fd,
        MemorySegment dst,
        int length,
        long offset,
        int alignBytes,
        String file,
        CompletableFuture<Integer> future) {
      this.fd = fd;
      this.dst = dst;
      this.length = length;
      this.offset = offset;
      this.alignBytes = alignBytes;
      this.file = file;
      this.future = future;
    }

    String describe() {
      return "read file="
          + file
          + " offset="
          + offset
          + " length="
          + length
          + (done > 0 ? " (after " + done + " bytes)" : "");
    }
  }
}
