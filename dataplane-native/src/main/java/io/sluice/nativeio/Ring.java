package io.sluice.nativeio;

import static io.sluice.nativeio.RingDescriptor.*;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * One io_uring instance bound through FFM and raw syscalls: queue SQEs, submit them, reap CQEs.
 *
 * <p>Owned by one thread (in Sluice, a {@link RingReader}'s ring thread): nothing here is
 * thread-safe, and the memory backing the ring is confined to the thread that opened it, so a stray
 * call from another thread fails with {@link WrongThreadException} instead of corrupting the ring.
 *
 * <p>Memory ordering follows liburing: SQE contents are plain writes published by a release store
 * of {@code sq.tail}; {@code sq.head} (written by the kernel) is read with acquire; {@code cq.tail}
 * is read with acquire before the CQEs it covers; {@code cq.head} is released once a CQE has been
 * read, handing the slot back to the kernel. The ring is sized so that CQEs cannot overflow when
 * the owner keeps at most {@link #sqEntries()} operations in flight (the CQ has twice the SQ's
 * entries).
 */
public final class Ring implements AutoCloseable {
  // (MemorySegment, long offset) -> int, with acquire/release access modes on aligned offsets.
  private static final VarHandle INT = JAVA_INT.varHandle();

  private final Arena arena;
  private final MemorySegment callState;
  private final int ringFd;
  private final int setupFlags;
  private final int features;

  private final MemorySegment sqRing;
  private final MemorySegment cqRing;
  private final MemorySegment sqes;
  private final long sqHeadOffset;
  private final long sqTailOffset;
  private final int sqMask;
  private final int sqEntries;
  private final long cqHeadOffset;
  private final long cqTailOffset;
  private final long cqesOffset;
  private final int cqMask;
  private final int cqEntries;

  private int sqLocalTail; // SQEs written up to here; published to the kernel on submit
  private int cqLocalHead;
  private boolean closed;

  /** Receives one completion: the SQE's user_data, the result (bytes, or -errno) and CQE flags. */
  @FunctionalInterface
  public interface CompletionHandler {
    void onCompletion(long userData, int result, int flags);
  }

  private Ring(Arena arena, MemorySegment callState, int ringFd, int setupFlags, MemorySegment p)
      throws NativeIoException {
    this.arena = arena;
    this.callState = callState;
    this.ringFd = ringFd;
    this.setupFlags = setupFlags;
    this.features = p.get(JAVA_INT, PARAMS_FEATURES);
    this.sqEntries = p.get(JAVA_INT, PARAMS_SQ_ENTRIES);
    this.cqEntries = p.get(JAVA_INT, PARAMS_CQ_ENTRIES);
    long sqArray = p.get(JAVA_INT, PARAMS_SQ_OFF + SQ_OFF_ARRAY);
    long cqes = p.get(JAVA_INT, PARAMS_CQ_OFF + CQ_OFF_CQES);
    long sqRingBytes = sqArray + (long) sqEntries * Integer.BYTES;
    long cqRingBytes = cqes + (long) cqEntries * CQE_BYTES;

    if ((features & IORING_FEAT_SINGLE_MMAP) != 0) {
      long bytes = Math.max(sqRingBytes, cqRingBytes);
      this.sqRing = map(bytes, IORING_OFF_SQ_RING);
      this.cqRing = sqRing;
    } else {
      this.sqRing = map(sqRingBytes, IORING_OFF_SQ_RING);
      this.cqRing = map(cqRingBytes, IORING_OFF_CQ_RING);
    }
    this.sqes = map((long) sqEntries * SQE_BYTES, IORING_OFF_SQES);

    this.sqHeadOffset = p.get(JAVA_INT, PARAMS_SQ_OFF + SQ_OFF_HEAD);
    this.sqTailOffset = p.get(JAVA_INT, PARAMS_SQ_OFF + SQ_OFF_TAIL);
    this.sqMask = sqRing.get(JAVA_INT, p.get(JAVA_INT, PARAMS_SQ_OFF + SQ_OFF_RING_MASK));
    this.cqHeadOffset = p.get(JAVA_INT, PARAMS_CQ_OFF + CQ_OFF_HEAD);
    this.cqTailOffset = p.get(JAVA_INT, PARAMS_CQ_OFF + CQ_OFF_TAIL);
    this.cqesOffset = cqes;
    this.cqMask = cqRing.get(JAVA_INT, p.get(JAVA_INT, PARAMS_CQ_OFF + CQ_OFF_RING_MASK));

    // The SQ array maps ring positions to SQE indexes; identity, set once.
    for (int i = 0; i < sqEntries; i++) {
      sqRing.set(JAVA_INT, sqArray + (long) i * Integer.BYTES, i);
    }
    this.sqLocalTail = (int) INT.getAcquire(sqRing, sqTailOffset);
    this.cqLocalHead = (int) INT.getAcquire(cqRing, cqHeadOffset);
  }

  /** Opens a ring with at least {@code entries} SQ entries and default setup flags. */
  public static Ring open(int entries) throws NativeIoException {
    return open(entries, 0);
  }

  /**
   * Opens a ring; {@code setupFlags} are {@code IORING_SETUP_*} bits. The calling thread owns it.
   *
   * @throws NativeIoException naming io_uring_setup or mmap and the errno
   */
  public static Ring open(int entries, int setupFlags) throws NativeIoException {
    IoUring.ensurePlatform();
    if (entries < 1 || entries > 32768) {
      throw new IllegalArgumentException("entries=" + entries + " must be in [1, 32768]");
    }
    Arena arena = Arena.ofConfined();
    MemorySegment callState = LibC.newCallState(arena);
    int fd = -1;
    try {
      MemorySegment params = arena.allocate(PARAMS_BYTES, 8);
      params.set(JAVA_INT, PARAMS_FLAGS, setupFlags);
      long r =
          LibC.syscall(callState, LibC.SYS_IO_URING_SETUP, entries, params.address(), 0, 0, 0, 0);
      if (r < 0) {
        throw new NativeIoException(
            "io_uring_setup entries=" + entries + " flags=0x" + Integer.toHexString(setupFlags),
            LibC.errno(callState));
      }
      fd = (int) r;
      return new Ring(arena, callState, fd, setupFlags, params);
    } catch (Throwable t) {
      if (fd >= 0) {
        LibC.close(callState, fd); // best effort; the first failure is the one to report
      }
      arena.close();
      throw t;
    }
  }

  private MemorySegment map(long bytes, long offset) throws NativeIoException {
    long address =
        LibC.mmap(
            callState,
            bytes,
            LibC.PROT_READ | LibC.PROT_WRITE,
            LibC.MAP_SHARED | LibC.MAP_POPULATE,
            ringFd,
            offset);
    if (address == -1L) {
      throw new NativeIoException(
          "mmap io_uring ring offset=0x" + Long.toHexString(offset) + " bytes=" + bytes,
          LibC.errno(callState));
    }
    // Tied to the arena: closing the ring unmaps it.
    return LibC.unmappedWith(arena, address, bytes, address, bytes);
  }

  /** SQ entries the kernel granted (a power of two, at least what was asked). */
  public int sqEntries() {
    return sqEntries;
  }

  public int cqEntries() {
    return cqEntries;
  }

  /** {@code IORING_FEAT_*} bits the kernel reported. */
  public int features() {
    return features;
  }

  public int setupFlags() {
    return setupFlags;
  }

  /** SQEs that can be queued before the next submit. */
  public int sqSpace() {
    return sqEntries - (sqLocalTail - (int) INT.getAcquire(sqRing, sqHeadOffset));
  }

  /**
   * Queues an {@code IORING_OP_READ} of {@code length} bytes at file {@code offset} into native
   * memory at {@code address}; the caller keeps that memory alive until the completion arrives.
   *
   * @return false when the SQ is full (submit, then retry)
   */
  public boolean prepareRead(int fd, long address, int length, long offset, long userData) {
    return prepare(IORING_OP_READ, fd, address, length, offset, userData);
  }

  /** Queues an {@code IORING_OP_NOP}; false when the SQ is full. */
  public boolean prepareNop(long userData) {
    return prepare(IORING_OP_NOP, -1, 0, 0, 0, userData);
  }

  private boolean prepare(
      byte opcode, int fd, long address, int length, long offset, long userData) {
    if (sqSpace() <= 0) {
      return false;
    }
    long sqe = (long) (sqLocalTail & sqMask) * SQE_BYTES;
    sqes.set(JAVA_BYTE, sqe + SQE_OPCODE, opcode);
    sqes.set(JAVA_BYTE, sqe + SQE_FLAGS, (byte) 0);
    sqes.set(JAVA_SHORT, sqe + SQE_IOPRIO, (short) 0);
    sqes.set(JAVA_INT, sqe + SQE_FD, fd);
    sqes.set(JAVA_LONG, sqe + SQE_OFF, offset);
    sqes.set(JAVA_LONG, sqe + SQE_ADDR, address);
    sqes.set(JAVA_INT, sqe + SQE_LEN, length);
    sqes.set(JAVA_INT, sqe + SQE_RW_FLAGS, 0);
    sqes.set(JAVA_LONG, sqe + SQE_USER_DATA, userData);
    sqes.set(JAVA_LONG, sqe + 40, 0L); // buf_index, personality, splice_fd_in
    sqes.set(JAVA_LONG, sqe + 48, 0L); // addr3
    sqes.set(JAVA_LONG, sqe + 56, 0L);
    sqLocalTail++;
    return true;
  }

  /**
   * Publishes the queued SQEs and enters the kernel: submits them and, when {@code minComplete} is
   * positive, waits until that many completions are ready. A signal (EINTR) or a momentarily full
   * kernel queue (EAGAIN, EBUSY) returns 0 early: reap, then call again.
   *
   * @return SQEs the kernel consumed
   */
  public int submitAndWait(int minComplete) throws NativeIoException {
    INT.setRelease(sqRing, sqTailOffset, sqLocalTail);
    int pending = sqLocalTail - (int) INT.getAcquire(sqRing, sqHeadOffset);
    if (pending == 0 && minComplete == 0) {
      return 0;
    }
    int flags = minComplete > 0 ? IORING_ENTER_GETEVENTS : 0;
    long r =
        LibC.syscall(
            callState, LibC.SYS_IO_URING_ENTER, ringFd, pending, minComplete, flags, 0L, 0L);
    if (r < 0) {
      int errno = LibC.errno(callState);
      if (errno == Errno.EINTR || errno == Errno.EAGAIN || errno == Errno.EBUSY) {
        return 0;
      }
      throw new NativeIoException(
          "io_uring_enter to_submit=" + pending + " min_complete=" + minComplete, errno);
    }
    return (int) r;
  }

  /**
   * Hands every ready completion to {@code handler}, in order. Each CQE slot is returned to the
   * kernel before its handler runs, so a handler may queue new SQEs and may throw.
   *
   * @return completions handled
   */
  public int reap(CompletionHandler handler) {
    int tail = (int) INT.getAcquire(cqRing, cqTailOffset);
    int handled = 0;
    while (cqLocalHead != tail) {
      long cqe = cqesOffset + (long) (cqLocalHead & cqMask) * CQE_BYTES;
      long userData = cqRing.get(JAVA_LONG, cqe + CQE_USER_DATA);
      int result = cqRing.get(JAVA_INT, cqe + CQE_RES);
      int flags = cqRing.get(JAVA_INT, cqe + CQE_FLAGS);
      cqLocalHead++;
      INT.setRelease(cqRing, cqHeadOffset, cqLocalHead);
      handled++;
      handler.onCompletion(userData, result, flags);
    }
    return handled;
  }

  /** Whether the kernel implements {@code opcode} ({@code IORING_REGISTER_PROBE}, Linux 5.6+). */
  public boolean supportsOp(int opcode) throws NativeIoException {
    int ops = 256;
    try (Arena a = Arena.ofConfined()) {
      MemorySegment probe = a.allocate(PROBE_HEADER_BYTES + (long) ops * PROBE_OP_BYTES, 8);
      long r =
          LibC.syscall(
              callState,
              LibC.SYS_IO_URING_REGISTER,
              ringFd,
              IORING_REGISTER_PROBE,
              probe.address(),
              ops,
              0,
              0);
      if (r < 0) {
        throw new NativeIoException(
            "io_uring_register IORING_REGISTER_PROBE", LibC.errno(callState));
      }
      int lastOp = Byte.toUnsignedInt(probe.get(JAVA_BYTE, 0));
      if (opcode > lastOp) {
        return false;
      }
      short flags =
          probe.get(
              JAVA_SHORT, PROBE_HEADER_BYTES + (long) opcode * PROBE_OP_BYTES + PROBE_OP_FLAGS);
      return (flags & IO_URING_OP_SUPPORTED) != 0;
    }
  }

  /**
   * Unmaps the rings and closes the ring fd. Operations still in flight are cancelled by the
   * kernel, which may still write into their buffers for a moment: close an idle ring.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    LibC.close(callState, ringFd);
    arena.close();
  }
}
