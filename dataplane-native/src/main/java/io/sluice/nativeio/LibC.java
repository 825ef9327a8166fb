package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few libc entry points the native data plane needs, as FFM downcalls (Linux x86_64 only).
 *
 * <p>Every call that can fail takes a capture segment from {@link #newCallState} and returns the
 * raw result; {@link #errno} reads what the call left there. Callers turn {@code -1} into a {@link
 * NativeIoException}. Loading this class on another platform fails: touch it only after {@link
 * IoUring}'s platform check.
 */
final class LibC {
  static final int O_RDONLY = 0;
  static final int O_DIRECT = 0x4000; // x86_64 value; arm64 differs
  static final int O_CLOEXEC = 0x80000;
  static final int PROT_READ = 0x1;
  static final int PROT_WRITE = 0x2;
  static final int MAP_SHARED = 0x01;
  static final int MAP_PRIVATE = 0x02;
  static final int MAP_ANONYMOUS = 0x20;
  static final int MADV_DONTNEED = 4;
  static final int MADV_HUGEPAGE = 14;
  static final int MADV_POPULATE_WRITE = 23; // Linux 5.14
  static final int MAP_POPULATE = 0x8000;
  static final int EFD_CLOEXEC = 0x80000;
  static final int AT_FDCWD = -100;
  static final int AT_EMPTY_PATH = 0x1000;

  static final long SYS_IO_URING_SETUP = 425;
  static final long SYS_IO_URING_ENTER = 426;
  static final long SYS_IO_URING_REGISTER = 427;
  static final long SYS_STATX = 332;

  private static final Linker LINKER = Linker.nativeLinker();
  private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
  private static final VarHandle ERRNO =
      CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
  private static final Linker.Option ERRNO_OPTION = Linker.Option.captureCallState("errno");

  // long syscall(long number, ...): the six variadic slots are always passed; the kernel ignores
  // the ones a call does not use.
  private static final MethodHandle SYSCALL =
      downcall(
          "syscall",
          FunctionDescriptor.of(
              JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
              JAVA_LONG),
          ERRNO_OPTION,
          Linker.Option.firstVariadicArg(1));
  // int open(const char *path, int flags, ...): mode is variadic and unused without O_CREAT.
  private static final MethodHandle OPEN =
      downcall(
          "open",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
          ERRNO_OPTION,
          Linker.Option.firstVariadicArg(2));
  private static final MethodHandle CLOSE =
      downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO_OPTION);
  private static final MethodHandle MMAP =
      downcall(
          "mmap",
          FunctionDescriptor.of(
              ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG),
          ERRNO_OPTION);
  private static final MethodHandle MUNMAP =
      downcall("munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), ERRNO_OPTION);
  private static final MethodHandle MADVISE =
      downcall(
          "madvise", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), ERRNO_OPTION);
  private static final MethodHandle EVENTFD =
      downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), ERRNO_OPTION);
  // write(2) without errno capture: used by any thread to wake a ring thread, where a shared
  // capture segment would be a data race and the errno would change nothing.
  private static final MethodHandle WRITE =
      downcall("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));

  private LibC() {}

  @SuppressWarnings("restricted") // the module's purpose; run with --enable-native-access
  static MethodHandle downcall(
      String name, FunctionDescriptor descriptor, Linker.Option... options) {
    MemorySegment symbol =
        LINKER
            .defaultLookup()
            .find(name)
            .orElseThrow(() -> new UnsatisfiedLinkError("libc symbol " + name + " not found"));
    return LINKER.downcallHandle(symbol, descriptor, options);
  }

  /** A segment to capture errno into; one per thread or per call, never shared between threads. */
  static MemorySegment newCallState(Arena arena) {
    return arena.allocate(CALL_STATE);
  }

  static int errno(MemorySegment callState) {
    return (int) ERRNO.get(callState, 0L);
  }

  static long syscall(
      MemorySegment callState, long number, long a1, long a2, long a3, long a4, long a5, long a6) {
    try {
      return (long) SYSCALL.invokeExact(callState, number, a1, a2, a3, a4, a5, a6);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int open(MemorySegment callState, MemorySegment path, int flags) {
    try {
      return (int) OPEN.invokeExact(callState, path, flags, 0);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int close(MemorySegment callState, int fd) {
    try {
      return (int) CLOSE.invokeExact(callState, fd);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  /** Returns the mapping's address, or -1 (MAP_FAILED). */
  static long mmap(MemorySegment callState, long length, int prot, int flags, int fd, long offset) {
    try {
      MemorySegment p =
          (MemorySegment)
              MMAP.invokeExact(callState, MemorySegment.NULL, length, prot, flags, fd, offset);
      return p.address();
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int munmap(MemorySegment callState, long address, long length) {
    try {
      return (int) MUNMAP.invokeExact(callState, MemorySegment.ofAddress(address), length);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  /**
   * The {@code length} bytes at {@code address}, which lie in the mapping of {@code mappedLength}
   * bytes at {@code mappedAddress}, as a segment of {@code arena}: closing the arena unmaps the
   * whole mapping, and later accesses fail instead of faulting.
   */
  @SuppressWarnings("restricted") // sizing memory the kernel just mapped
  static MemorySegment unmappedWith(
      Arena arena, long address, long length, long mappedAddress, long mappedLength) {
    return MemorySegment.ofAddress(address)
        .reinterpret(
            length,
            arena,
            segment -> {
              try (Arena call = Arena.ofConfined()) {
                munmap(newCallState(call), mappedAddress, mappedLength);
              }
            });
  }

  static int madvise(MemorySegment callState, long address, long length, int advice) {
    try {
      return (int) MADVISE.invokeExact(callState, MemorySegment.ofAddress(address), length, advice);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int eventfd(MemorySegment callState, int initial, int flags) {
    try {
      return (int) EVENTFD.invokeExact(callState, initial, flags);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static long write(int fd, MemorySegment buffer, long length) {
    try {
      return (long) WRITE.invokeExact(fd, buffer, length);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  private static RuntimeException rethrow(Throwable t) {
    // The handles declare no checked exceptions: anything here is an Error or a RuntimeException.
    if (t instanceof Error e) {
      throw e;
    }
    if (t instanceof RuntimeException e) {
      return e;
    }
    return new IllegalStateException("unexpected checked exception from a downcall", t);
  }
}
