package io.sluice.format.megatron;

import io.sluice.format.DatasetFormatException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A Megatron {@code .idx} file, memory-mapped (never copied to the heap, so 10^8 sequences cost
 * only page cache), with its header checked. Immutable; reads are safe from any thread while the
 * arena it was mapped in is open.
 *
 * <pre>
 *   0                 9                 17      18                  26                  34
 *   +-----------------+-----------------+-------+-------------------+-------------------+
 *   | magic           | version         | dtype | sequence count n  | document count d  |
 *   | MMIDIDX\0\0     | uint64 = 1      | uint8 | uint64            | uint64            |
 *   +-----------------+-----------------+-------+-------------------+-------------------+
 *   | lengths    int32[n]  elements in each sequence           at 34                     |
 *   | pointers   int64[n]  byte offset of each sequence in .bin at 34 + 4n                |
 *   | documents  int64[d]  first sequence of each document      at 34 + 12n               |
 *   +-----------------------------------------------------------------------------------+
 *   little-endian, unaligned (arrays start at byte 34); length exactly 34 + 12n + 8d
 * </pre>
 *
 * Megatron-LM's {@code MMapIndexedDatasetBuilder} writes this layout; the multimodal variant
 * appends int8 sequence modes[n], which the exact-length check refuses.
 */
final class MegatronIdx {
  static final byte[] MAGIC = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
  static final long VERSION_OFFSET = 9;
  static final long DTYPE_OFFSET = 17;
  static final long SEQUENCE_COUNT_OFFSET = 18;
  static final long DOCUMENT_COUNT_OFFSET = 26;
  static final long HEADER_LENGTH = 34;
  static final long SUPPORTED_VERSION = 1;

  private static final ValueLayout.OfInt INT32 =
      ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfLong INT64 =
      ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final Path path;
  private final MemorySegment segment;
  private final MegatronDtype dtype;
  private final long sequenceCount;
  private final long documentCount;

  private MegatronIdx(
      Path path,
      MemorySegment segment,
      MegatronDtype dtype,
      long sequenceCount,
      long documentCount) {
    this.path = path;
    this.segment = segment;
    this.dtype = dtype;
    this.sequenceCount = sequenceCount;
    this.documentCount = documentCount;
  }

  /**
   * Maps {@code path} into {@code arena} and checks its header and length. {@code expectedLength}
   * is the length the caller stamped; a file of another length changed under us and is refused.
   */
  static MegatronIdx map(Path path, long expectedLength, Arena arena) throws IOException {
    MemorySegment segment;
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size != expectedLength) {
        throw new DatasetFormatException(
            path,
            -1,
            "length_bytes=" + size + " changed from " + expectedLength + " while being read");
      }
      if (size < HEADER_LENGTH) {
        throw new DatasetFormatException(
            path,
            size,
            "a "
                + HEADER_LENGTH
                + "-byte header (magic, version, dtype, sequence count, document count) expected,"
                + " file ends at "
                + size);
      }
      segment = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
    }
    return parse(path, segment);
  }

  private static MegatronIdx parse(Path path, MemorySegment seg) {
    long size = seg.byteSize();
    for (int i = 0; i < MAGIC.length; i++) {
      if (seg.get(ValueLayout.JAVA_BYTE, i) != MAGIC[i]) {
        throw new DatasetFormatException(
            path, 0, "magic MMIDIDX\\x00\\x00 expected (not a Megatron indexed-dataset .idx)");
      }
    }
    long version = seg.get(INT64, VERSION_OFFSET);
    if (version != SUPPORTED_VERSION) {
      throw new DatasetFormatException(
          path,
          VERSION_OFFSET,
          "version="
              + Long.toUnsignedString(version)
              + " is not supported (expected "
              + SUPPORTED_VERSION
              + ")");
    }
    int code = Byte.toUnsignedInt(seg.get(ValueLayout.JAVA_BYTE, DTYPE_OFFSET));
    MegatronDtype dtype = MegatronDtype.ofCode(code);
    if (dtype == null) {
      throw new DatasetFormatException(
          path,
          DTYPE_OFFSET,
          "dtype code=" + code + " must be one of " + MegatronDtype.codesText());
    }
    long n = seg.get(INT64, SEQUENCE_COUNT_OFFSET);
    long room = size - HEADER_LENGTH;
    if (n < 0 || n > room / 12) {
      throw new DatasetFormatException(
          path,
          SEQUENCE_COUNT_OFFSET,
          "sequence count="
              + Long.toUnsignedString(n)
              + " needs "
              + (n < 0 ? "more than 2^63" : Long.toString(HEADER_LENGTH + 12 * n))
              + " bytes at least (12 per sequence), file length_bytes="
              + size);
    }
    long d = seg.get(INT64, DOCUMENT_COUNT_OFFSET);
    if (d < 0 || d > (Long.MAX_VALUE - HEADER_LENGTH - 12 * n) / 8) {
      throw new DatasetFormatException(
          path,
          DOCUMENT_COUNT_OFFSET,
          "document count="
              + Long.toUnsignedString(d)
              + " is past any file length (file length_bytes="
              + size
              + ")");
    }
    long expected = HEADER_LENGTH + 12 * n + 8 * d;
    if (size != expected) {
      String why;
      if (size < expected) {
        why = "truncated";
      } else {
        why = (size - expected) + " trailing bytes";
        if (size - expected == n) {
          why += " (multimodal sequence modes are not supported)";
        }
      }
      throw new DatasetFormatException(
          path,
          Math.min(size, expected),
          "length_bytes="
              + size
              + " expected exactly "
              + expected
              + " = 34 + 12 x sequence count="
              + n
              + " + 8 x document count="
              + d
              + ": "
              + why);
    }
    return new MegatronIdx(path, seg, dtype, n, d);
  }

  /**
   * Checks every entry: lengths {@code >= 0}, each sequence inside the {@code .bin} of {@code
   * binLengthBytes}, document indices non-decreasing within {@code [0, n]}. One sequential pass.
   */
  void checkEntries(Path bin, long binLengthBytes) {
    long n = sequenceCount;
    long item = dtype.itemSizeBytes();
    long pointers = pointerOffset(0);
    for (long i = 0; i < n; i++) {
      int length = segment.get(INT32, HEADER_LENGTH + 4 * i);
      if (length < 0) {
        throw new DatasetFormatException(
            path, HEADER_LENGTH + 4 * i, "sequence=" + i + " length=" + length + " must be >= 0");
      }
      long pointer = segment.get(INT64, pointers + 8 * i);
      if (pointer < 0 || pointer > binLengthBytes - length * item) {
        throw pointerPastBin(i, pointer, length, bin, binLengthBytes);
      }
    }
    long documents = documentOffset(0);
    long previous = 0;
    for (long j = 0; j < documentCount; j++) {
      long v = segment.get(INT64, documents + 8 * j);
      if (v < previous || v > n) {
        throw new DatasetFormatException(
            path,
            documents + 8 * j,
            "document="
                + j
                + " index="
                + v
                + " must be in ["
                + previous
                + ", "
                + n
                + "] (non-decreasing, at most the sequence count)");
      }
      previous = v;
    }
  }

  DatasetFormatException pointerPastBin(
      long sequence, long pointer, int length, Path bin, long binLengthBytes) {
    return new DatasetFormatException(
        path,
        pointerOffset(sequence),
        "sequence="
            + sequence
            + " pointer="
            + pointer
            + " length="
            + length
            + " x itemsize="
            + dtype.itemSizeBytes()
            + " must lie within "
            + bin.getFileName()
            + " length_bytes="
            + binLengthBytes);
  }

  Path path() {
    return path;
  }

  MegatronDtype dtype() {
    return dtype;
  }

  long sequenceCount() {
    return sequenceCount;
  }

  long documentCount() {
    return documentCount;
  }

  /** Elements in sequence {@code i}, as stored (the caller checks the sign). */
  int length(long i) {
    try {
      return segment.get(INT32, lengthOffset(i));
    } catch (InternalError e) {
      throw shrunk(lengthOffset(i), e);
    }
  }

  /** Byte offset of sequence {@code i} in the {@code .bin}, as stored. */
  long pointer(long i) {
    try {
      return segment.get(INT64, pointerOffset(i));
    } catch (InternalError e) {
      throw shrunk(pointerOffset(i), e);
    }
  }

  /**
   * The JVM's answer to SIGBUS, a read of a mapped page the file no longer has: the {@code .idx}
   * was truncated while open. Reported as bad input, not left to take the daemon's thread down.
   * Compiled code may raise the error a little after the faulting read, outside the accessor's own
   * catch, so callers reading entries in a loop catch it too.
   */
  DatasetFormatException shrunk(long offset, InternalError e) {
    return new DatasetFormatException(
        path, offset, "mapped .idx shrank while open (changed since indexing?)", e);
  }

  long lengthOffset(long i) {
    return HEADER_LENGTH + 4 * i;
  }

  long pointerOffset(long i) {
    return HEADER_LENGTH + 4 * sequenceCount + 8 * i;
  }

  long documentOffset(long j) {
    return HEADER_LENGTH + 12 * sequenceCount + 8 * j;
  }
}
