package io.sluice.demo;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.IndexProgress;
import io.sluice.format.Manifest;
import io.sluice.format.tokens.TokenDtype;
import io.sluice.format.tokens.TokensFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * The demo's token dataset: uint16 shards whose every token is a function of its sample id and
 * position, so a reader can check each byte it receives without a copy of the data.
 */
public final class DemoDataset {
  public static final TokenDtype DTYPE = TokenDtype.UINT16;

  private DemoDataset() {}

  /** Token {@code j} of global sample {@code sampleId}. */
  public static int token(long sampleId, int j) {
    return (int) ((base(sampleId) + 31L * j) & 0xFFFF);
  }

  private static long base(long sampleId) {
    long h = sampleId * 0x9E3779B97F4A7C15L;
    return h ^ (h >>> 29);
  }

  /**
   * Checks the {@code seqLen} tokens of {@code sampleId} at {@code tokens[from...]}; returns the
   * index of the first wrong one, or -1.
   */
  public static int firstBadToken(long sampleId, short[] tokens, int from, int seqLen) {
    int expected = (int) base(sampleId);
    for (int j = 0; j < seqLen; j++, expected += 31) {
      if (tokens[from + j] != (short) expected) {
        return j;
      }
    }
    return -1;
  }

  /**
   * Makes (or reuses, when its manifest matches) {@code shards} shards of {@code samplesPerShard}
   * samples of {@code seqLen} tokens in {@code dir}, and indexes them.
   */
  public static Manifest ensure(Path dir, int shards, int samplesPerShard, int seqLen)
      throws IOException {
    Files.createDirectories(dir);
    if (Files.exists(dir.resolve(Manifest.FILE_NAME))) {
      try {
        Manifest m = Manifest.read(dir);
        if (m.shards().size() == shards
            && m.totalSamples() == (long) shards * samplesPerShard
            && String.valueOf(seqLen).equals(m.params().get("seq_len"))
            && TokensFormat.index(dir, DTYPE, seqLen, IndexProgress.NONE).reused()) {
          return m;
        }
      } catch (DatasetFormatException e) {
        // stale or damaged: rewrite below
      }
    }
    try (var old = Files.list(dir)) {
      for (Path p : old.toList()) {
        Files.delete(p);
      }
    }
    ByteBuffer sample =
        ByteBuffer.allocateDirect(seqLen * DTYPE.widthBytes()).order(ByteOrder.LITTLE_ENDIAN);
    long id = 0;
    for (int s = 0; s < shards; s++) {
      Path file = dir.resolve(String.format(Locale.ROOT, "shard-%05d.bin", s));
      try (FileChannel ch =
          FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        for (int i = 0; i < samplesPerShard; i++, id++) {
          sample.clear();
          for (int j = 0; j < seqLen; j++) {
            sample.putShort((short) token(id, j));
          }
          sample.flip();
          while (sample.hasRemaining()) {
            ch.write(sample);
          }
        }
      }
    }
    return TokensFormat.index(dir, DTYPE, seqLen, IndexProgress.NONE).manifest();
  }
}
