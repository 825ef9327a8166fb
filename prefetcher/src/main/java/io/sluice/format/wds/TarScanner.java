package io.sluice.format.wds;

import io.sluice.format.DatasetFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Walks the headers of one tar file (v7, ustar, GNU, pax) front to back and reports each regular
 * member's path and data range. One buffered sequential read; member data is skipped, not read.
 * Single-threaded: one scanner per file.
 *
 * <p>Implementation notes: 512-byte headers; the checksum is the sum of the header's bytes with the
 * checksum field counted as spaces, accepted as an unsigned or a signed sum (old tars used signed
 * chars). Sizes are octal, or GNU base-256 when the first byte has its top bit set. GNU {@code L}
 * members carry the next member's long name, pax {@code x} members its {@code path} and {@code
 * size}; pax {@code g} and GNU {@code K} are skipped. Header-only types (links, devices,
 * directories, fifos) carry no data whatever their size field says, as in Go's archive/tar and
 * Python's tarfile. The archive ends at the first zero block or at end of file on a block boundary;
 * anything shorter is a truncated tar.
 */
final class TarScanner {
  static final int BLOCK = 512;

  /** GNU long names and pax headers larger than this are refused rather than allocated. */
  static final int MAX_EXTENDED_BYTES = 1 << 20;

  private static final int WINDOW_BYTES = 1 << 20;
  private static final int CHECKSUM_OFFSET = 148;
  private static final int CHECKSUM_LENGTH = 8;
  private static final int SIZE_OFFSET = 124;
  private static final int SIZE_LENGTH = 12;
  private static final int TYPE_OFFSET = 156;
  private static final int MAGIC_OFFSET = 257;
  private static final int PREFIX_OFFSET = 345;
  private static final int PREFIX_LENGTH = 155;
  private static final int NAME_LENGTH = 100;

  /** Receives each regular member in archive order. */
  interface MemberSink {
    /**
     * @param path the member's full path (long-name and pax overrides applied)
     * @param headerOffset where the member's own header starts
     * @param dataOffset where its data starts
     * @param sizeBytes its data length
     */
    void member(String path, long headerOffset, long dataOffset, long sizeBytes);

    /** A member that is neither regular nor a directory (link, device, fifo, unknown type). */
    void skippedNonRegular(long headerOffset);
  }

  private final Path file;
  private final FileChannel channel;
  private final long lengthBytes;
  // Direct: a heap buffer would make the JDK copy through a temporary direct one on every read.
  private final ByteBuffer window = ByteBuffer.allocateDirect(WINDOW_BYTES);

  /** The header being parsed, copied out of the window. */
  private final byte[] w = new byte[BLOCK];

  private long windowStart;
  private int windowLength;
  private final CharsetDecoder utf8 =
      StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT);

  private TarScanner(Path file, FileChannel channel, long lengthBytes) {
    this.file = file;
    this.channel = channel;
    this.lengthBytes = lengthBytes;
  }

  /**
   * Scans {@code file}, which must be {@code expectedLength} bytes long, reporting members to
   * {@code sink}.
   */
  static void scan(Path file, long expectedLength, MemberSink sink) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long len = ch.size();
      if (len != expectedLength) {
        throw new DatasetFormatException(
            file,
            -1,
            "changed while indexing (length_bytes=" + expectedLength + ", now " + len + ")");
      }
      new TarScanner(file, ch, len).run(sink);
    }
  }

  private void run(MemberSink sink) throws IOException {
    long pos = 0;
    String longName = null; // from a GNU 'L' member
    String paxPath = null; // from a pax 'x' member
    long paxSize = -1;
    long extendedAt = -1; // header offset of the first pending 'L' or 'x'
    while (true) {
      if (pos == lengthBytes) {
        if (extendedAt >= 0) {
          throw fail(extendedAt, "a member after this long-name/pax header, found end of file");
        }
        return; // end of file on a block boundary: an archive without end-of-archive blocks
      }
      if (lengthBytes - pos < BLOCK) {
        throw fail(
            pos,
            "a 512-byte header, found "
                + (lengthBytes - pos)
                + " bytes before end of file (truncated tar)");
      }
      window.get(fill(pos, BLOCK), w, 0, BLOCK);
      int h = 0;
      if (isZeroBlock(h)) {
        if (extendedAt >= 0) {
          throw fail(
              extendedAt, "a member after this long-name/pax header, found end-of-archive block");
        }
        return;
      }
      checkChecksum(h, pos);
      byte type = w[h + TYPE_OFFSET];
      long size = parseSize(h, pos);
      boolean headerOnly = type >= '1' && type <= '6';
      if (!headerOnly && paxSize >= 0 && isRegular(type)) {
        size = paxSize;
      }
      long dataOffset = pos + BLOCK;
      long dataLength = headerOnly ? 0 : size;
      if (dataLength > lengthBytes - dataOffset) {
        throw fail(
            pos,
            "member data of size="
                + dataLength
                + " at offset "
                + dataOffset
                + " to end within the file (length_bytes="
                + lengthBytes
                + "; truncated tar or bad size field)");
      }
      long next = dataOffset + roundUp(dataLength);
      if (next > lengthBytes) {
        throw fail(
            dataOffset + dataLength,
            "padding to a 512-byte boundary after member data, found end of file (truncated tar)");
      }
      switch (type) {
        case 'L' -> {
          longName = cString(readExtended(pos, dataOffset, dataLength), pos);
          extendedAt = extendedAt < 0 ? pos : extendedAt;
        }
        case 'x' -> {
          PaxRecords pax = parsePax(readExtended(pos, dataOffset, dataLength), dataOffset);
          if (pax.path != null) {
            paxPath = pax.path;
          }
          if (pax.size >= 0) {
            paxSize = pax.size;
          }
          extendedAt = extendedAt < 0 ? pos : extendedAt;
        }
        case 'g', 'K' -> {
          // global pax header, GNU long link name: nothing a sample needs
        }
        case 'S' -> throw fail(pos, "no GNU sparse member (type 'S' is not supported)");
        default -> {
          if (isRegular(type)) {
            String path =
                paxPath != null ? paxPath : longName != null ? longName : headerName(h, pos);
            if (!path.endsWith("/")) { // old tars mark directories by a trailing slash only
              sink.member(path, pos, dataOffset, dataLength);
            }
          } else if (type != '5') {
            sink.skippedNonRegular(pos);
          }
          longName = null;
          paxPath = null;
          paxSize = -1;
          extendedAt = -1;
        }
      }
      pos = next;
    }
  }

  private static boolean isRegular(byte type) {
    return type == '0' || type == 0 || type == '7';
  }

  private static long roundUp(long n) {
    return (n + BLOCK - 1) & -BLOCK;
  }

  /** Makes {@code [pos, pos+n)} resident in the window; returns its index there. */
  private int fill(long pos, int n) throws IOException {
    if (pos >= windowStart && pos + n <= windowStart + windowLength) {
      return (int) (pos - windowStart);
    }
    window.clear();
    long at = pos;
    while (window.hasRemaining()) {
      int r = channel.read(window, at);
      if (r < 0) {
        break;
      }
      at += r;
    }
    windowStart = pos;
    windowLength = window.position();
    if (windowLength < n) {
      throw fail(pos, n + " bytes, found end of file (file shrank while indexing?)");
    }
    return 0;
  }

  private boolean isZeroBlock(int h) {
    for (int i = 0; i < BLOCK; i++) {
      if (w[h + i] != 0) {
        return false;
      }
    }
    return true;
  }

  private void checkChecksum(int h, long pos) {
    long stored = parseOctal(h + CHECKSUM_OFFSET, CHECKSUM_LENGTH, pos + CHECKSUM_OFFSET, "chksum");
    long unsigned = 0;
    long signed = 0;
    for (int i = 0; i < BLOCK; i++) {
      byte b =
          (i >= CHECKSUM_OFFSET && i < CHECKSUM_OFFSET + CHECKSUM_LENGTH) ? (byte) ' ' : w[h + i];
      unsigned += b & 0xFF;
      signed += b;
    }
    if (stored != unsigned && stored != signed) {
      throw fail(
          pos,
          "header checksum="
              + unsigned
              + " (sum of the header bytes with the checksum field as spaces), stored chksum="
              + stored
              + " (not a tar header, or a damaged one)");
    }
  }

  /** The size field: octal, or GNU base-256 (top bit of the first byte set). */
  private long parseSize(int h, long pos) {
    int f = h + SIZE_OFFSET;
    if ((w[f] & 0x80) == 0) {
      return parseOctal(f, SIZE_LENGTH, pos + SIZE_OFFSET, "size");
    }
    if ((w[f] & 0x40) != 0) {
      throw fail(pos + SIZE_OFFSET, "a non-negative base-256 size field, found a negative one");
    }
    long v = w[f] & 0x3F;
    for (int i = 1; i < SIZE_LENGTH; i++) {
      if (v > (Long.MAX_VALUE >>> 8)) {
        throw fail(pos + SIZE_OFFSET, "a base-256 size field below 2^63, found a larger one");
      }
      v = (v << 8) | (w[f + i] & 0xFF);
    }
    return v;
  }

  /**
   * An octal field as tar reads it: up to the first NUL, surrounding spaces ignored, empty is 0.
   */
  private long parseOctal(int at, int length, long fileOffset, String field) {
    int end = at;
    while (end < at + length && w[end] != 0) {
      end++;
    }
    int start = at;
    while (start < end && w[start] == ' ') {
      start++;
    }
    while (end > start && w[end - 1] == ' ') {
      end--;
    }
    long v = 0;
    for (int i = start; i < end; i++) {
      int d = w[i] - '0';
      if (d < 0 || d > 7) {
        throw fail(
            fileOffset,
            "an octal "
                + field
                + " field, found byte 0x"
                + Integer.toHexString(w[i] & 0xFF)
                + " at offset "
                + (fileOffset + (i - at)));
      }
      v = (v << 3) | d; // at most 12 digits: no overflow
    }
    return v;
  }

  /** name[100], with ustar's prefix[155] in front when the header is POSIX ustar. */
  private String headerName(int h, long pos) {
    int nameLength = cLength(h, NAME_LENGTH);
    boolean posixUstar =
        w[h + MAGIC_OFFSET] == 'u'
            && w[h + MAGIC_OFFSET + 1] == 's'
            && w[h + MAGIC_OFFSET + 2] == 't'
            && w[h + MAGIC_OFFSET + 3] == 'a'
            && w[h + MAGIC_OFFSET + 4] == 'r'
            && w[h + MAGIC_OFFSET + 5] == 0;
    int prefixLength = posixUstar ? cLength(h + PREFIX_OFFSET, PREFIX_LENGTH) : 0;
    String name = decode(w, h, nameLength, pos);
    if (prefixLength == 0) {
      return name;
    }
    return decode(w, h + PREFIX_OFFSET, prefixLength, pos + PREFIX_OFFSET) + "/" + name;
  }

  private int cLength(int at, int max) {
    int n = 0;
    while (n < max && w[at + n] != 0) {
      n++;
    }
    return n;
  }

  private byte[] readExtended(long headerOffset, long dataOffset, long length) throws IOException {
    if (length > MAX_EXTENDED_BYTES) {
      throw fail(
          headerOffset,
          "a long-name/pax header of at most "
              + MAX_EXTENDED_BYTES
              + " bytes, found size="
              + length);
    }
    int n = (int) length; // <= MAX_EXTENDED_BYTES <= WINDOW_BYTES
    int at = fill(dataOffset, n);
    byte[] out = new byte[n];
    window.get(at, out, 0, n);
    return out;
  }

  /** A GNU long name: bytes up to the first NUL. */
  private String cString(byte[] b, long headerOffset) {
    int n = 0;
    while (n < b.length && b[n] != 0) {
      n++;
    }
    return decode(b, 0, n, headerOffset + BLOCK);
  }

  private record PaxRecords(String path, long size) {}

  /** Pax records: {@code "LEN key=value\n"}, LEN counting the whole record in decimal. */
  private PaxRecords parsePax(byte[] b, long dataOffset) {
    String path = null;
    long size = -1;
    int p = 0;
    while (p < b.length) {
      if (b[p] == 0) { // some writers pad the record area with NULs
        break;
      }
      int q = p;
      long recordLength = 0;
      while (q < b.length && b[q] >= '0' && b[q] <= '9' && q - p < 10) {
        recordLength = recordLength * 10 + (b[q] - '0');
        q++;
      }
      if (q == p || q >= b.length || b[q] != ' ' || recordLength <= q - p + 1) {
        throw fail(dataOffset + p, "a pax record \"LENGTH key=value\\n\"");
      }
      if (recordLength > b.length - p) {
        throw fail(
            dataOffset + p,
            "a pax record of length="
                + recordLength
                + " within the pax header's "
                + (b.length - p)
                + " remaining bytes");
      }
      int end = p + (int) recordLength; // exclusive; b[end-1] must be '\n'
      if (b[end - 1] != '\n') {
        throw fail(dataOffset + p, "a pax record ending in a newline");
      }
      int keyStart = q + 1;
      int eq = keyStart;
      while (eq < end - 1 && b[eq] != '=') {
        eq++;
      }
      if (eq >= end - 1) {
        throw fail(dataOffset + p, "a pax record with key=value");
      }
      String key = new String(b, keyStart, eq - keyStart, StandardCharsets.ISO_8859_1);
      int valueStart = eq + 1;
      int valueLength = end - 1 - valueStart;
      switch (key) {
        case "path" -> path = decode(b, valueStart, valueLength, dataOffset + p);
        case "size" -> size = parseDecimal(b, valueStart, valueLength, dataOffset + p);
        default -> {
          if (key.startsWith("GNU.sparse.")) {
            throw fail(dataOffset + p, "no GNU sparse member (pax " + key + " is not supported)");
          }
        }
      }
      p = end;
    }
    return new PaxRecords(path, size);
  }

  private long parseDecimal(byte[] b, int at, int length, long fileOffset) {
    if (length < 1 || length > 18) {
      throw fail(fileOffset, "a pax size of 1 to 18 decimal digits");
    }
    long v = 0;
    for (int i = at; i < at + length; i++) {
      if (b[i] < '0' || b[i] > '9') {
        throw fail(fileOffset, "a decimal pax size");
      }
      v = v * 10 + (b[i] - '0');
    }
    return v;
  }

  private String decode(byte[] b, int at, int length, long fileOffset) {
    boolean ascii = true;
    for (int i = at; i < at + length; i++) {
      if (b[i] < 0) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      return new String(b, at, length, StandardCharsets.ISO_8859_1);
    }
    try {
      CharBuffer c = utf8.reset().decode(ByteBuffer.wrap(b, at, length));
      return c.toString();
    } catch (CharacterCodingException e) {
      throw new DatasetFormatException(file, fileOffset, "a member name in UTF-8", e);
    }
  }

  private DatasetFormatException fail(long offset, String expected) {
    return new DatasetFormatException(file, offset, expected);
  }
}
