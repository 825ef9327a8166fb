package io.sluice.format.megatron;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Writes Megatron indexed datasets as Megatron-LM's {@code MMapIndexedDatasetBuilder} does
 * (sequences back to back in the {@code .bin}, pointers their running byte offsets), for tests.
 */
public final class MegatronWriter {
  private MegatronWriter() {}

  /** One shard as written: its files and the sequences' bytes. */
  public record Shard(Path bin, Path idx, List<byte[]> sequences) {}

  /**
   * Random sequences of {@code dtype}: lengths in {@code [0, maxLength]}, every fifth one empty, so
   * zero-length sequences are always covered.
   */
  public static List<byte[]> randomSequences(
      Random rnd, MegatronDtype dtype, int count, int maxLength) {
    List<byte[]> out = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      int length = i % 5 == 2 ? 0 : rnd.nextInt(maxLength + 1);
      byte[] b = new byte[length * dtype.itemSizeBytes()];
      rnd.nextBytes(b);
      out.add(b);
    }
    return out;
  }

  /** Writes {@code dir/NAME.bin} and {@code dir/NAME.idx}; documents of two sequences each. */
  public static Shard write(Path dir, String name, MegatronDtype dtype, List<byte[]> sequences)
      throws IOException {
    int n = sequences.size();
    int[] lengths = new int[n];
    long[] pointers = new long[n];
    long pointer = 0;
    for (int i = 0; i < n; i++) {
      lengths[i] = sequences.get(i).length / dtype.itemSizeBytes();
      pointers[i] = pointer;
      pointer += sequences.get(i).length;
    }
    long[] documents = new long[(n + 1) / 2 + 1];
    for (int j = 0; j < documents.length; j++) {
      documents[j] = Math.min(2L * j, n);
    }
    ByteBuffer bin = ByteBuffer.allocate((int) pointer);
    sequences.forEach(bin::put);
    Path binPath = dir.resolve(name + ".bin");
    Path idxPath = dir.resolve(name + ".idx");
    Files.write(binPath, bin.array());
    Files.write(idxPath, idx(dtype.code(), 1, lengths, pointers, documents));
    return new Shard(binPath, idxPath, sequences);
  }

  /** The bytes of an {@code .idx} with the given header values and arrays. */
  static byte[] idx(int dtypeCode, long version, int[] lengths, long[] pointers, long[] documents) {
    ByteBuffer b =
        ByteBuffer.allocate(34 + 4 * lengths.length + 8 * pointers.length + 8 * documents.length)
            .order(ByteOrder.LITTLE_ENDIAN);
    b.put(MegatronIdx.MAGIC);
    b.putLong(version);
    b.put((byte) dtypeCode);
    b.putLong(lengths.length);
    b.putLong(documents.length);
    for (int v : lengths) {
      b.putInt(v);
    }
    for (long v : pointers) {
      b.putLong(v);
    }
    for (long v : documents) {
      b.putLong(v);
    }
    return b.array();
  }

  /** Overwrites bytes at {@code offset} in place (same length), then bumps the mtime. */
  static void patch(Path file, long offset, ByteBuffer bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      while (bytes.hasRemaining()) {
        offset += ch.write(bytes, offset);
      }
    }
    bumpMtime(file);
  }

  static void patchLong(Path file, long offset, long value) throws IOException {
    patch(file, offset, le(8).putLong(0, value));
  }

  static void patchInt(Path file, long offset, int value) throws IOException {
    patch(file, offset, le(4).putInt(0, value));
  }

  static void patchByte(Path file, long offset, int value) throws IOException {
    patch(file, offset, ByteBuffer.wrap(new byte[] {(byte) value}));
  }

  /** Moves the mtime a few seconds on, so a same-length rewrite is a visible change. */
  static void bumpMtime(Path file) throws IOException {
    Files.setLastModifiedTime(
        file, FileTime.fromMillis(Files.getLastModifiedTime(file).toMillis() + 3000));
  }

  private static ByteBuffer le(int size) {
    return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
  }
}
