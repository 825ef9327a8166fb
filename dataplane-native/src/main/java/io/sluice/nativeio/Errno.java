package io.sluice.nativeio;

/** Linux errno numbers by name, for messages like {@code errno=EINVAL (22, invalid argument)}. */
public final class Errno {
  public static final int EPERM = 1;
  public static final int ENOENT = 2;
  public static final int EINTR = 4;
  public static final int EIO = 5;
  public static final int EBADF = 9;
  public static final int EAGAIN = 11;
  public static final int ENOMEM = 12;
  public static final int EACCES = 13;
  public static final int EFAULT = 14;
  public static final int EBUSY = 16;
  public static final int EINVAL = 22;
  public static final int EMFILE = 24;
  public static final int ENOSYS = 38;
  public static final int EOPNOTSUPP = 95;
  public static final int ECANCELED = 125;

  private Errno() {}

  /** The symbolic name, e.g. {@code EINVAL}, or {@code errno N} for one this table lacks. */
  public static String name(int errno) {
    String[] e = entry(errno);
    return e == null ? "errno " + errno : e[0];
  }

  /** {@code NAME (N, description)}. */
  public static String describe(int errno) {
    String[] e = entry(errno);
    return e == null ? "errno " + errno : e[0] + " (" + errno + ", " + e[1] + ")";
  }

  private static String[] entry(int errno) {
    return switch (errno) {
      case 1 -> new String[] {"EPERM", "operation not permitted"};
      case 2 -> new String[] {"ENOENT", "no such file or directory"};
      case 3 -> new String[] {"ESRCH", "no such process"};
      case 4 -> new String[] {"EINTR", "interrupted system call"};
      case 5 -> new String[] {"EIO", "input/output error"};
      case 6 -> new String[] {"ENXIO", "no such device or address"};
      case 7 -> new String[] {"E2BIG", "argument list too long"};
      case 9 -> new String[] {"EBADF", "bad file descriptor"};
      case 11 -> new String[] {"EAGAIN", "resource temporarily unavailable"};
      case 12 -> new String[] {"ENOMEM", "cannot allocate memory"};
      case 13 -> new String[] {"EACCES", "permission denied"};
      case 14 -> new String[] {"EFAULT", "bad address"};
      case 16 -> new String[] {"EBUSY", "device or resource busy"};
      case 17 -> new String[] {"EEXIST", "file exists"};
      case 19 -> new String[] {"ENODEV", "no such device"};
      case 20 -> new String[] {"ENOTDIR", "not a directory"};
      case 21 -> new String[] {"EISDIR", "is a directory"};
      case 22 -> new String[] {"EINVAL", "invalid argument"};
      case 23 -> new String[] {"ENFILE", "too many open files in system"};
      case 24 -> new String[] {"EMFILE", "too many open files"};
      case 25 -> new String[] {"ENOTTY", "inappropriate ioctl for device"};
      case 27 -> new String[] {"EFBIG", "file too large"};
      case 28 -> new String[] {"ENOSPC", "no space left on device"};
      case 29 -> new String[] {"ESPIPE", "illegal seek"};
      case 30 -> new String[] {"EROFS", "read-only file system"};
      case 36 -> new String[] {"ENAMETOOLONG", "file name too long"};
      case 38 -> new String[] {"ENOSYS", "function not implemented"};
      case 40 -> new String[] {"ELOOP", "too many levels of symbolic links"};
      case 61 -> new String[] {"ENODATA", "no data available"};
      case 62 -> new String[] {"ETIME", "timer expired"};
      case 75 -> new String[] {"EOVERFLOW", "value too large for defined data type"};
      case 95 -> new String[] {"EOPNOTSUPP", "operation not supported"};
      case 110 -> new String[] {"ETIMEDOUT", "connection timed out"};
      case 116 -> new String[] {"ESTALE", "stale file handle"};
      case 121 -> new String[] {"EREMOTEIO", "remote I/O error"};
      case 122 -> new String[] {"EDQUOT", "disk quota exceeded"};
      case 125 -> new String[] {"ECANCELED", "operation canceled"};
      default -> null;
    };
  }
}
