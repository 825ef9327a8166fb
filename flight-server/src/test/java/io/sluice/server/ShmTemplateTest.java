package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.UInt2Vector;
import org.apache.arrow.vector.UInt8Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.VectorUnloader;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;

/** A batch written through the template is byte for byte the message the Arrow path writes. */
class ShmTemplateTest {
  static final int ROWS = 7;
  static final int SEQ = 13; // odd: 26-byte samples, so buffer padding shows

  static final Schema TOKENS =
      new Schema(
          List.of(
              new Field("sample_id", FieldType.notNullable(new ArrowType.Int(64, false)), null),
              new Field(
                  "tokens",
                  FieldType.notNullable(new ArrowType.FixedSizeList(SEQ)),
                  List.of(
                      new Field(
                          "item", FieldType.notNullable(new ArrowType.Int(16, false)), null)))));

  /** The message the Arrow path writes for {@code ids}, token j of sample s being s * 7 + j. */
  static byte[] viaArrow(BufferAllocator alloc, long[] ids, ShmTemplate[] templateOut) {
    try (VectorSchemaRoot root = VectorSchemaRoot.create(TOKENS, alloc)) {
      UInt8Vector idv = (UInt8Vector) root.getVector("sample_id");
      FixedSizeListVector tok = (FixedSizeListVector) root.getVector("tokens");
      idv.allocateNew(ids.length);
      tok.setInitialCapacity(ids.length);
      tok.allocateNew();
      UInt2Vector values = (UInt2Vector) tok.getDataVector();
      for (int i = 0; i < ids.length; i++) {
        idv.set(i, ids[i]);
        tok.setNotNull(i);
        for (int j = 0; j < SEQ; j++) {
          values.set(i * SEQ + j, (int) (ids[i] * 7 + j) & 0xFFFF);
        }
      }
      idv.setValueCount(ids.length);
      values.setValueCount(ids.length * SEQ);
      tok.setValueCount(ids.length);
      root.setRowCount(ids.length);
      try (ArrowRecordBatch rb = new VectorUnloader(root).getRecordBatch();
          Arena arena = Arena.ofConfined()) {
        ShmMessage m = ShmMessage.of(rb);
        MemorySegment seg = arena.allocate(m.bytes(), 64);
        m.writeTo(seg, 0);
        if (templateOut != null) {
          templateOut[0] = ShmTemplate.of(TOKENS, rb, seg, m.bodyOffset());
        }
        return seg.toArray(ValueLayout.JAVA_BYTE);
      }
    }
  }

  static MemorySegment[] samples(Arena arena, long[] ids) {
    MemorySegment[] out = new MemorySegment[ids.length];
    for (int i = 0; i < ids.length; i++) {
      out[i] = arena.allocate(SEQ * 2L);
      for (int j = 0; j < SEQ; j++) {
        out[i].set(ValueLayout.JAVA_SHORT_UNALIGNED, j * 2L, (short) (ids[i] * 7 + j));
      }
    }
    return out;
  }

  @Test
  void aBatchThroughTheTemplateIsTheArrowPathsMessage() {
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        Arena arena = Arena.ofConfined()) {
      ShmTemplate[] t = new ShmTemplate[1];
      viaArrow(alloc, new long[] {5, 9, 1, 77, 3, 3, 40}, t);
      assertNotNull(t[0]);
      long[] next = {1000, 2, 65537, 12, 0, 999_999_999_999L, 31};
      byte[] expected = viaArrow(alloc, next, null);
      MemorySegment[] bytes = samples(arena, next);
      assertTrue(t[0].fits(ROWS, bytes));
      assertEquals(expected.length, t[0].bytes());
      MemorySegment out = arena.allocate(t[0].bytes() + 128);
      out.fill((byte) 0x5A); // garbage where the message goes: every byte must be written
      t[0].write(out, 64, next, bytes);
      assertArrayEquals(expected, out.asSlice(64, t[0].bytes()).toArray(ValueLayout.JAVA_BYTE));
      assertEquals((byte) 0x5A, out.get(ValueLayout.JAVA_BYTE, 63), "nothing before it");
      assertEquals((byte) 0x5A, out.get(ValueLayout.JAVA_BYTE, 64 + t[0].bytes()), "nor after");
    }
  }

  @Test
  void otherRowCountsSampleSizesAndSchemasAreNotForTheTemplate() {
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        Arena arena = Arena.ofConfined()) {
      ShmTemplate[] t = new ShmTemplate[1];
      viaArrow(alloc, new long[] {1, 2, 3, 4, 5, 6, 7}, t);
      assertFalse(t[0].fits(ROWS - 1, samples(arena, new long[] {1, 2, 3, 4, 5, 6})));
      MemorySegment[] odd = samples(arena, new long[] {1, 2, 3, 4, 5, 6, 7});
      odd[3] = arena.allocate(SEQ * 2L + 2);
      assertFalse(t[0].fits(ROWS, odd));
      Schema idsOnly = new Schema(List.of(TOKENS.getFields().get(0)));
      try (VectorSchemaRoot root = VectorSchemaRoot.create(idsOnly, alloc)) {
        root.setRowCount(0);
        try (ArrowRecordBatch rb = new VectorUnloader(root).getRecordBatch()) {
          assertNull(ShmTemplate.of(idsOnly, rb, arena.allocate(8), 0));
        }
      }
    }
  }
}
