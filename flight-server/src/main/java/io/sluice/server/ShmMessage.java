package io.sluice.server;

import io.sluice.client.ShmLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.ipc.message.ArrowBuffer;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.ipc.message.IpcOption;
import org.apache.arrow.vector.ipc.message.MessageSerializer;

/**
 * One record batch as an encapsulated Arrow IPC message, laid out for a shm ring: continuation
 * marker, metadata length, flatbuffer metadata padded so the body starts 64-byte aligned, then the
 * body buffers at the offsets the metadata names. Any Arrow IPC reader reads it in place.
 */
final class ShmMessage {
  private static final ValueLayout.OfInt INT =
      ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final ArrowRecordBatch batch;
  private final ByteBuffer metadata;
  private final long paddedMetadata;
  private final long bodyBytes;

  private ShmMessage(ArrowRecordBatch batch, ByteBuffer metadata, long paddedMetadata) {
    this.batch = batch;
    this.metadata = metadata;
    this.paddedMetadata = paddedMetadata;
    this.bodyBytes = batch.computeBodyLength();
  }

  static ShmMessage of(ArrowRecordBatch batch) {
    ByteBuffer meta = MessageSerializer.serializeMetadata(batch, IpcOption.DEFAULT);
    long a = ShmLayout.MESSAGE_ALIGNMENT;
    long padded = (8 + meta.remaining() + a - 1) / a * a - 8;
    return new ShmMessage(batch, meta, padded);
  }

  /** Bytes the message takes. */
  long bytes() {
    return 8 + paddedMetadata + bodyBytes;
  }

  /** Where the body starts, from the message's start. */
  long bodyOffset() {
    return 8 + paddedMetadata;
  }

  /** Writes the message at {@code at} in {@code region}; padding is zeroed. */
  void writeTo(MemorySegment region, long at) {
    region.set(INT, at, -1); // continuation marker
    region.set(INT, at + 4, Math.toIntExact(paddedMetadata));
    int metaLen = metadata.remaining();
    MemorySegment.copy(MemorySegment.ofBuffer(metadata), 0, region, at + 8, metaLen);
    region.asSlice(at + 8 + metaLen, paddedMetadata - metaLen).fill((byte) 0);
    long body = at + 8 + paddedMetadata;
    List<ArrowBuf> buffers = batch.getBuffers();
    List<ArrowBuffer> layout = batch.getBuffersLayout();
    long written = 0;
    for (int i = 0; i < buffers.size(); i++) {
      ArrowBuffer place = layout.get(i);
      if (place.getOffset() > written) {
        region.asSlice(body + written, place.getOffset() - written).fill((byte) 0);
      }
      long size = place.getSize();
      if (size > 0) {
        ArrowBuf buf = buffers.get(i);
        MemorySegment.copy(
            MemorySegment.ofBuffer(buf.nioBuffer(0, Math.toIntExact(size))),
            0,
            region,
            body + place.getOffset(),
            size);
      }
      written = place.getOffset() + size;
    }
    if (bodyBytes > written) {
      region.asSlice(body + written, bodyBytes - written).fill((byte) 0);
    }
  }
}
