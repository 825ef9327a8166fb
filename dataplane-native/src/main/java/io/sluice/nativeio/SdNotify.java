package io.sluice.nativeio;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;

/**
 * systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram to the unix socket
 * named by {@code NOTIFY_SOCKET} ({@code /path}, or {@code @name} in the abstract namespace). A
 * unit with {@code Type=notify} waits for {@code READY=1}. Java's channels have no unix datagram
 * socket, hence two libc calls through FFM.
 */
public final class SdNotify {
  private static final int AF_UNIX = 1;
  private static final int SOCK_DGRAM = 2;
  private static final int SOCK_CLOEXEC = 0x80000;
  private static final int MSG_NOSIGNAL = 0x4000;
  private static final int SUN_PATH_BYTES = 108;

  private SdNotify() {}

  /**
   * Sends {@code state} (for example {@code "READY=1"}) when {@code NOTIFY_SOCKET} is set; true
   * when it was sent, false when there is no socket to send to or the send failed (never throws:
   * readiness is best effort, the service runs either way).
   */
  public static boolean notify(String state) {
    return notify(System.getenv("NOTIFY_SOCKET"), state);
  }

  static boolean notify(String socket, String state) {
    if (socket == null
        || socket.isEmpty()
        || (socket.charAt(0) != '/' && socket.charAt(0) != '@')
        || !System.getProperty("os.name", "").startsWith("Linux")) {
      return false;
    }
    byte[] path = socket.getBytes(StandardCharsets.UTF_8);
    boolean abstractName = path[0] == '@';
    if (path.length >= SUN_PATH_BYTES) {
      return false;
    }
    try (Arena arena = Arena.ofConfined()) {
      int fd = (int) Calls.SOCKET.invokeExact(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        return false;
      }
      try {
        MemorySegment addr = arena.allocate(2 + SUN_PATH_BYTES);
        addr.set(JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(path, 0, addr, JAVA_BYTE, 2, path.length);
        if (abstractName) {
          addr.set(JAVA_BYTE, 2, (byte) 0);
        }
        int addrLen = 2 + path.length + (abstractName ? 0 : 1);
        byte[] msg = state.getBytes(StandardCharsets.UTF_8);
        MemorySegment buf = arena.allocate(msg.length);
        MemorySegment.copy(msg, 0, buf, JAVA_BYTE, 0, msg.length);
        long sent =
            (long)
                Calls.SENDTO.invokeExact(fd, buf, (long) msg.length, MSG_NOSIGNAL, addr, addrLen);
        return sent == msg.length;
      } finally {
        int ignored = (int) Calls.CLOSE.invokeExact(fd);
      }
    } catch (Throwable t) {
      return false;
    }
  }

  /** The downcalls, linked on first use (so a non-Linux host never loads them). */
  private static final class Calls {
    static final MethodHandle SOCKET =
        LibC.downcall("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    static final MethodHandle SENDTO =
        LibC.downcall(
            "sendto",
            FunctionDescriptor.of(
                JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    static final MethodHandle CLOSE =
        LibC.downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
  }
}
