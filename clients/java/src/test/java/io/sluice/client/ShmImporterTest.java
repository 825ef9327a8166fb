package io.sluice.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A region that is not what the descriptor says is refused, naming the region, never read. */
class ShmImporterTest {
  @TempDir Path dir;

  private static final Schema SCHEMA =
      new Schema(
          List.of(
              new Field(
                  Protocol.SAMPLE_ID_COLUMN,
                  FieldType.notNullable(new ArrowType.Int(64, false)),
                  null)));

  private Path region(long capacity, java.util.function.Consumer<MemorySegment> edit)
      throws IOException {
    Path file = dir.resolve("r" + System.nanoTime());
    try (FileChannel ch =
            FileChannel.open(
                file,
                StandardOpenOption.CREATE_NEW,
                StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        Arena arena = Arena.ofConfined()) {
      long size = ShmLayout.HEADER_BYTES + capacity;
      ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
      MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
      ShmLayout.writeHeader(m, capacity);
      edit.accept(m);
    }
    return file;
  }

  private ProtocolException refused(Path file, long offset, long length) {
    try (BufferAllocator a = new RootAllocator();
        ShmImporter importer = new ShmImporter(SCHEMA, a)) {
      return assertThrows(
          ProtocolException.class,
          () -> importer.load(new ShmSlot(file.toString(), offset, length, 0)));
    }
  }

  @Test
  void aFileThatIsNotARegionIsRefused() throws Exception {
    Path file = region(4096, m -> m.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 42L));
    ProtocolException e = refused(file, 4096, 64);
    assertTrue(e.getMessage().contains("not a Sluice region"), e.getMessage());
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
  }

  @Test
  void anotherLayoutVersionIsRefused() throws Exception {
    Path file = region(4096, m -> m.set(ValueLayout.JAVA_INT_UNALIGNED, 8, 2));
    ProtocolException e = refused(file, 4096, 64);
    assertTrue(e.getMessage().contains("layout version 2"), e.getMessage());
  }

  @Test
  void aCapacityBeyondTheFileIsRefused() throws Exception {
    Path file = region(4096, m -> m.set(ValueLayout.JAVA_LONG_UNALIGNED, 16, 1L << 40));
    ProtocolException e = refused(file, 4096, 64);
    assertTrue(e.getMessage().contains("bad header"), e.getMessage());
  }

  @Test
  void aSlotOutsideTheRegionIsRefusedBeforeAnyRead() throws Exception {
    Path file = region(4096, m -> {});
    ProtocolException e = refused(file, 4096 + 4000, 200);
    assertTrue(e.getMessage().contains("lies outside region"), e.getMessage());
  }

  @Test
  void aMissingRegionNamesThePath() {
    Path missing = dir.resolve("gone");
    ProtocolException e = refused(missing, 4096, 64);
    assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    assertEquals("shm", e.field());
  }

  @Test
  void theReleaseMarkIsWhatTheDaemonReads() throws Exception {
    Path file = region(4096, m -> {});
    try (FileChannel ch =
            FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        Arena arena = Arena.ofConfined()) {
      MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, Files.size(file), arena);
      assertEquals(0, ShmLayout.released(m));
      ShmLayout.release(m, 6);
      assertEquals(7, ShmLayout.released(m), "released = seq + 1: batches 0..6 are free");
    }
  }
}
