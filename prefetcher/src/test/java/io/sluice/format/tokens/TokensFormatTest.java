package io.sluice.format.tokens;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.Manifest;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokensFormatTest {
  @TempDir Path dir;

  /** Writes {@code tokens} uint16 tokens whose value is (base + i) mod 65536. */
  private Path shard(String name, int tokens, int base) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(tokens * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < tokens; i++) {
      b.putShort((short) (base + i));
    }
    Path p = dir.resolve(name);
    Files.write(p, b.array());
    return p;
  }

  @Test
  void indexesInFileNameOrderAndReportsRemainders() throws IOException {
    shard("b.bin", 40, 1000); // 2 samples of 16 + 8 remainder
    shard("a.bin", 32, 0); // 2 samples
    Files.writeString(dir.resolve("notes.txt"), "ignored");
    IndexReport r = TokensFormat.index(dir, TokenDtype.UINT16, 16, IndexProgress.NONE);
    assertFalse(r.reused());
    assertEquals(2, r.manifest().shards().size());
    assertEquals("a.bin", r.manifest().shards().get(0).path());
    assertEquals(4, r.manifest().totalSamples());
    assertEquals(1, r.notes().size());
    assertTrue(r.notes().get(0).contains("b.bin: 8 trailing tokens"), r.notes().get(0));
    assertEquals(r.manifest(), Manifest.read(dir));
    assertTrue(TokensFormat.index(dir, TokenDtype.UINT16, 16, IndexProgress.NONE).reused());
    assertFalse(TokensFormat.index(dir, TokenDtype.UINT16, 8, IndexProgress.NONE).reused());
  }

  @Test
  void readsTheExactBytesOfEverySample() throws IOException {
    shard("a.bin", 32, 0);
    shard("b.bin", 48, 5000);
    TokensFormat.index(dir, TokenDtype.UINT16, 16, IndexProgress.NONE);
    try (PosixReadBackend posix = new PosixReadBackend();
        TokensSource ds = (TokensSource) Formats.open(dir, posix)) {
      assertEquals(5, ds.layout().totalSamples());
      int[] firstToken = {0, 16, 5000, 5016, 5032};
      for (int s = 0; s < 5; s++) {
        ByteBuffer dst = ByteBuffer.allocateDirect(32).order(ByteOrder.LITTLE_ENDIAN);
        ds.readSample(s, dst);
        for (int j = 0; j < 16; j++) {
          assertEquals(
              firstToken[s] + j, dst.getShort(j * 2) & 0xFFFF, "sample " + s + " token " + j);
        }
      }
      assertThrows(IllegalArgumentException.class, () -> ds.readSample(5, ByteBuffer.allocate(32)));
    }
  }

  @Test
  void oddLengthNamesFileAndOffset() throws IOException {
    Path p = dir.resolve("bad.bin");
    Files.write(p, new byte[33]);
    DatasetFormatException e =
        assertThrows(
            DatasetFormatException.class,
            () -> TokensFormat.index(dir, TokenDtype.UINT16, 4, IndexProgress.NONE));
    assertEquals(p, e.file());
    assertEquals(32, e.offset());
    assertTrue(e.getMessage().contains("file=" + p + " offset=32"), e.getMessage());
    assertTrue(e.getMessage().contains("dtype=uint16"), e.getMessage());
  }

  @Test
  void emptyFolderAndTooShortShardsAreRefused() throws IOException {
    DatasetFormatException empty =
        assertThrows(
            DatasetFormatException.class,
            () -> TokensFormat.index(dir, TokenDtype.UINT32, 4, IndexProgress.NONE));
    assertTrue(empty.getMessage().contains("no *.bin"), empty.getMessage());
    shard("a.bin", 3, 0);
    DatasetFormatException shortShard =
        assertThrows(
            DatasetFormatException.class,
            () -> TokensFormat.index(dir, TokenDtype.UINT16, 4, IndexProgress.NONE));
    assertTrue(shortShard.getMessage().contains("seq_len=4"), shortShard.getMessage());
  }

  @Test
  void shardChangedAfterIndexingIsRefusedNotServed() throws IOException {
    Path a = shard("a.bin", 32, 0);
    TokensFormat.index(dir, TokenDtype.UINT16, 16, IndexProgress.NONE);
    shard("a.bin", 32, 7); // same length, new content and mtime
    Files.setLastModifiedTime(
        a, FileTime.fromMillis(Files.getLastModifiedTime(a).toMillis() + 5000));
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e =
          assertThrows(DatasetFormatException.class, () -> Formats.open(dir, posix));
      assertEquals(a, e.file());
      assertTrue(e.getMessage().contains("changed since indexing"), e.getMessage());
    }
  }

  @Test
  void missingManifestSaysHowToMakeOne() throws IOException {
    shard("a.bin", 32, 0);
    try (PosixReadBackend posix = new PosixReadBackend()) {
      DatasetFormatException e =
          assertThrows(DatasetFormatException.class, () -> Formats.open(dir, posix));
      assertTrue(e.getMessage().contains("sluice dataset index"), e.getMessage());
    }
  }

  @Test
  void truncatedAfterOpenFailsTheReadNamingFileAndOffset() throws IOException {
    Path a = shard("a.bin", 64, 0);
    TokensFormat.index(dir, TokenDtype.UINT16, 16, IndexProgress.NONE);
    try (PosixReadBackend posix = new PosixReadBackend();
        TokensSource ds = (TokensSource) Formats.open(dir, posix)) {
      try (var ch = java.nio.channels.FileChannel.open(a, java.nio.file.StandardOpenOption.WRITE)) {
        ch.truncate(70);
      }
      DatasetFormatException e =
          assertThrows(
              DatasetFormatException.class, () -> ds.readSample(3, ByteBuffer.allocateDirect(32)));
      assertTrue(e.getMessage().contains("file=" + a + " offset=96"), e.getMessage());
    }
  }
}
