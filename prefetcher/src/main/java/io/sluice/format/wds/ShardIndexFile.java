package io.sluice.format.wds;

import io.sluice.format.DatasetFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.CRC32C;

/**
 * Sluice's per-shard tar index, {@code NAME.tar.sluice-idx}: writes a {@link ShardIndex} and reads
 * one back, validating every field so a damaged or foreign file fails naming its offset.
 *
 * <pre>
 *   0 +-----------------------------------------------+
 *     | magic "SLWDSIDX"                      8 bytes |
 *   8 | version (1)                               u32 |
 *  12 | extension count E                         u32 |
 *  16 | sample count S                            u32 |
 *  20 | member count M                            u32 |
 *  24 | key bytes K                               u64 |
 *  32 | tar length_bytes when indexed             u64 |
 *  40 | tar mtime_ms when indexed                 u64 |
 *  48 | members skipped: no extension             u32 |
 *  52 | members skipped: links, devices, ...      u32 |
 *  56 | CRC-32C of the file, this field as 0      u32 |
 *  60 | reserved (0)                              u32 |
 *  64 +-----------------------------------------------+
 *     | E x (u16 length, UTF-8 extension)             |
 *     | S x i32 key end (cumulative, into key bytes)  |
 *     | S x i32 member end (cumulative)               |
 *     | M x u16 extension id                          |
 *     | M x i64 data offset in the tar                |
 *     | M x i64 data length                           |
 *     | K key bytes (UTF-8)                           |
 *     +-----------------------------------------------+   all little-endian
 * </pre>
 */
final class ShardIndexFile {
  static final String SUFFIX = ".sluice-idx";
  static final int VERSION = 1;
  static final int HEADER_BYTES = 64;
  static final int CRC_OFFSET = 56;
  private static final byte[] MAGIC = "SLWDSIDX".getBytes(StandardCharsets.US_ASCII);

  private ShardIndexFile() {}

  /** Writes {@code index} to {@code file} through a temporary file and an atomic rename. */
  static void write(Path file, ShardIndex index) throws IOException {
    List<byte[]> ext = new ArrayList<>();
    long length = HEADER_BYTES;
    for (String e : index.extensions()) {
      byte[] b = e.getBytes(StandardCharsets.UTF_8);
      if (b.length > 0xFFFF) {
        throw new DatasetFormatException(
            file, -1, "extensions under 64 KiB, found one of " + b.length + " bytes");
      }
      ext.add(b);
      length += 2 + b.length;
    }
    int s = index.samples();
    int m = index.members();
    byte[] keys = index.keyBytes();
    length += 8L * s + 18L * m + keys.length;
    if (length > Integer.MAX_VALUE - 8) {
      throw new DatasetFormatException(
          file, -1, "a shard index under 2 GiB (this shard would need " + length + " bytes)");
    }
    ByteBuffer b = ByteBuffer.allocate((int) length).order(ByteOrder.LITTLE_ENDIAN);
    b.put(MAGIC)
        .putInt(VERSION)
        .putInt(ext.size())
        .putInt(s)
        .putInt(m)
        .putLong(keys.length)
        .putLong(index.tarLengthBytes())
        .putLong(index.tarMtimeMs())
        .putInt(index.skippedNoExtension())
        .putInt(index.skippedNonRegular())
        .putInt(0) // CRC, below
        .putInt(0);
    for (byte[] e : ext) {
      b.putShort((short) e.length).put(e);
    }
    int p = b.position();
    b.asIntBuffer().put(index.rawKeyEnd());
    p += 4 * s;
    b.position(p).asIntBuffer().put(index.rawMemberEnd());
    p += 4 * s;
    b.position(p).asShortBuffer().put(index.rawMemberExtension());
    p += 2 * m;
    b.position(p).asLongBuffer().put(index.rawDataOffset());
    p += 8 * m;
    b.position(p).asLongBuffer().put(index.rawDataLength());
    p += 8 * m;
    b.position(p).put(keys);
    b.putInt(CRC_OFFSET, crc(b.array()));
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (FileChannel ch =
        FileChannel.open(
            tmp,
            StandardOpenOption.WRITE,
            StandardOpenOption.CREATE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      b.clear();
      while (b.hasRemaining()) {
        ch.write(b);
      }
    }
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /** CRC-32C of the whole file, its own field counted as zeros. */
  static int crc(byte[] file) {
    CRC32C c = new CRC32C();
    c.update(file, 0, CRC_OFFSET);
    c.update(new byte[4]);
    c.update(file, CRC_OFFSET + 4, file.length - CRC_OFFSET - 4);
    return (int) c.getValue();
  }

  /**
   * Reads and validates {@code file}. Every count is bounded by the file's length before anything
   * is allocated; offsets are checked against {@code tarLengthBytes} so a read can never leave the
   * tar.
   */
  static ShardIndex read(Path file) throws IOException {
    long size = Files.size(file);
    if (size < HEADER_BYTES) {
      throw bad(file, 0, "a shard index of at least " + HEADER_BYTES + " bytes, found " + size);
    }
    if (size > Integer.MAX_VALUE - 8) {
      throw bad(file, 0, "a shard index under 2 GiB, found " + size + " bytes");
    }
    byte[] all = new byte[(int) size];
    ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      while (b.hasRemaining()) {
        if (ch.read(b) < 0) {
          throw bad(file, b.position(), size + " bytes, found end of file (changed while reading)");
        }
      }
    }
    for (int i = 0; i < MAGIC.length; i++) {
      if (all[i] != MAGIC[i]) {
        throw bad(file, 0, "magic SLWDSIDX (not a Sluice wds index)");
      }
    }
    int version = b.getInt(8);
    if (version != VERSION) {
      throw bad(file, 8, "version=" + VERSION + ", found " + Integer.toUnsignedString(version));
    }
    long e = Integer.toUnsignedLong(b.getInt(12));
    long s = Integer.toUnsignedLong(b.getInt(16));
    long m = Integer.toUnsignedLong(b.getInt(20));
    long k = b.getLong(24);
    long tarLength = b.getLong(32);
    long tarMtime = b.getLong(40);
    int skippedNoExtension = b.getInt(48);
    int skippedNonRegular = b.getInt(52);
    int storedCrc = b.getInt(CRC_OFFSET);
    // Bound every count by the file length before allocating (each entry takes >= 1 byte).
    if (e > size || s > size || m > size || k < 0 || k > size || tarLength < 0) {
      throw bad(
          file,
          12,
          "counts that fit the file's "
              + size
              + " bytes, found extensions="
              + e
              + " samples="
              + s
              + " members="
              + m
              + " key_bytes="
              + k
              + " tar_length="
              + tarLength);
    }
    int actualCrc = crc(all);
    if (actualCrc != storedCrc) {
      throw bad(
          file,
          CRC_OFFSET,
          "crc32c="
              + Integer.toHexString(storedCrc)
              + " of the content, found "
              + Integer.toHexString(actualCrc)
              + " (damaged index: re-run sluice dataset index)");
    }
    b.position(HEADER_BYTES);
    var decoder =
        StandardCharsets.UTF_8
            .newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
    List<String> extensions = new ArrayList<>((int) e);
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < e; i++) {
      int at = b.position();
      if (b.remaining() < 2) {
        throw bad(file, at, "extension " + i + " of " + e + ", found end of file");
      }
      int n = Short.toUnsignedInt(b.getShort());
      if (n == 0 || n > b.remaining()) {
        throw bad(file, at, "an extension of 1 to " + b.remaining() + " bytes, found " + n);
      }
      String ext;
      try {
        ext = decoder.decode(b.slice(b.position(), n)).toString();
      } catch (CharacterCodingException ex) {
        throw new DatasetFormatException(file, at, "an extension in UTF-8", ex);
      }
      if (!seen.add(ext) || WdsFormat.isReservedColumn(ext)) {
        throw bad(file, at, "distinct, non-reserved extensions, found " + ext + " again");
      }
      extensions.add(ext);
      b.position(b.position() + n);
    }
    long expected = (long) b.position() + 8 * s + 18 * m + k;
    if (expected != size) {
      throw bad(
          file,
          b.position(),
          "file length "
              + expected
              + " for samples="
              + s
              + " members="
              + m
              + " key_bytes="
              + k
              + ", found "
              + size);
    }
    int[] keyEnd = new int[(int) s];
    int[] memberEnd = new int[(int) s];
    short[] ext = new short[(int) m];
    long[] offset = new long[(int) m];
    long[] length = new long[(int) m];
    int p = b.position();
    int keyEndAt = p;
    b.asIntBuffer().get(keyEnd);
    p += 4 * (int) s;
    int memberEndAt = p;
    b.position(p).asIntBuffer().get(memberEnd);
    p += 4 * (int) s;
    int extAt = p;
    b.position(p).asShortBuffer().get(ext);
    p += 2 * (int) m;
    int offsetAt = p;
    b.position(p).asLongBuffer().get(offset);
    p += 8 * (int) m;
    int lengthAt = p;
    b.position(p).asLongBuffer().get(length);
    p += 8 * (int) m;
    byte[] keys = new byte[(int) k];
    b.position(p).get(keys);
    for (int i = 0; i < m; i++) {
      if (Short.toUnsignedInt(ext[i]) >= e) {
        throw bad(
            file, extAt + 2L * i, "an extension id below " + e + ", found " + (ext[i] & 0xFFFF));
      }
      if (offset[i] < 0 || offset[i] > tarLength) {
        throw bad(
            file, offsetAt + 8L * i, "a data offset in [0, " + tarLength + "], found " + offset[i]);
      }
      if (length[i] < 0 || length[i] > tarLength - offset[i]) {
        throw bad(
            file,
            lengthAt + 8L * i,
            "a data length within the tar's "
                + tarLength
                + " bytes from offset "
                + offset[i]
                + ", found "
                + length[i]);
      }
    }
    int[] lastSampleOfExtension = new int[(int) e];
    java.util.Arrays.fill(lastSampleOfExtension, -1);
    int prevKey = 0;
    int prevMember = 0;
    for (int i = 0; i < s; i++) {
      if (keyEnd[i] < prevKey || keyEnd[i] > k) {
        throw bad(
            file, keyEndAt + 4L * i, "key end in [" + prevKey + ", " + k + "], found " + keyEnd[i]);
      }
      if (keyEnd[i] < k && (keys[keyEnd[i]] & 0xC0) == 0x80) {
        throw bad(file, keyEndAt + 4L * i, "a key end on a UTF-8 character boundary");
      }
      if (memberEnd[i] <= prevMember || memberEnd[i] > m) {
        throw bad(
            file,
            memberEndAt + 4L * i,
            "member end in [" + (prevMember + 1) + ", " + m + "], found " + memberEnd[i]);
      }
      for (int a = prevMember; a < memberEnd[i]; a++) {
        int x = Short.toUnsignedInt(ext[a]);
        if (lastSampleOfExtension[x] == i) {
          throw bad(file, extAt + 2L * a, "one member per extension per sample");
        }
        lastSampleOfExtension[x] = i;
      }
      prevKey = keyEnd[i];
      prevMember = memberEnd[i];
    }
    if (prevKey != k || prevMember != m) {
      throw bad(file, keyEndAt, "the last sample to end at key_bytes=" + k + " members=" + m);
    }
    try {
      decoder.reset().decode(ByteBuffer.wrap(keys));
    } catch (CharacterCodingException ex) {
      throw new DatasetFormatException(file, p, "keys in UTF-8", ex);
    }
    return new ShardIndex(
        extensions,
        keyEnd,
        keys,
        memberEnd,
        ext,
        offset,
        length,
        tarLength,
        tarMtime,
        skippedNoExtension,
        skippedNonRegular);
  }

  private static DatasetFormatException bad(Path file, long offset, String expected) {
    return new DatasetFormatException(file, offset, expected);
  }
}
