package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorLoader;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.VectorUnloader;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;

/**
 * A batch built by {@link TokenBatches} and loaded into a stream's root goes on the wire byte for
 * byte as the batch the vector path builds, batch after batch, and leaves nothing allocated.
 */
class TokenBatchesTest {
  private static byte[] wire(VectorSchemaRoot root) {
    try (ArrowRecordBatch rb = new VectorUnloader(root).getRecordBatch();
        Arena arena = Arena.ofConfined()) {
      ShmMessage m = ShmMessage.of(rb);
      MemorySegment seg = arena.allocate(m.bytes(), 64);
      m.writeTo(seg, 0);
      return seg.toArray(ValueLayout.JAVA_BYTE);
    }
  }

  @Test
  void batchesLoadedIntoTheStreamsRootAreTheVectorPathsBatches() {
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        Arena arena = Arena.ofConfined()) {
      try (TokenBatches tokens = TokenBatches.of(ShmTemplateTest.TOKENS, alloc);
          VectorSchemaRoot out = VectorSchemaRoot.create(ShmTemplateTest.TOKENS, alloc)) {
        VectorLoader loader = new VectorLoader(out);
        // Row counts that leave partial validity bytes, a larger batch after a smaller one (the
        // shared bitmap grows), and an empty one.
        for (long[] ids :
            List.of(
                new long[] {5, 9, 1, 77, 3, 3, 40},
                new long[] {1000, 2, 65537},
                new long[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 999},
                new long[] {})) {
          MemorySegment[] bytes = ShmTemplateTest.samples(arena, ids);
          assertTrue(tokens.fits(ids.length, bytes));
          try (ArrowRecordBatch rb = tokens.build(ids, ids.length, bytes)) {
            loader.load(rb);
          }
          assertEquals(ids.length, out.getRowCount());
          assertArrayEquals(
              ShmTemplateTest.viaArrow(alloc, ids, null), wire(out), "ids " + ids.length);
        }
      }
      assertEquals(0, alloc.getAllocatedMemory(), "every buffer returned");
    }
  }

  @Test
  void otherSampleSizesAndSchemasAreNotForIt() {
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        Arena arena = Arena.ofConfined();
        TokenBatches tokens = TokenBatches.of(ShmTemplateTest.TOKENS, alloc)) {
      MemorySegment[] odd = ShmTemplateTest.samples(arena, new long[] {1, 2, 3});
      odd[1] = arena.allocate(ShmTemplateTest.SEQ * 2L + 2);
      assertFalse(tokens.fits(3, odd));
      assertTrue(tokens.fits(1, odd), "only the first count samples are looked at");
      assertNull(
          TokenBatches.of(new Schema(List.of(ShmTemplateTest.TOKENS.getFields().get(0))), alloc));
    }
  }
}
