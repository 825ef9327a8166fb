package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Test;

class DirectFramesTest {
  /** A frame as Flight's batches make them: a heap header, then off-heap body buffers. */
  private static CompositeByteBuf flightLikeFrame(ByteBuf... body) {
    byte[] header = new byte[301];
    for (int i = 0; i < header.length; i++) {
      header[i] = (byte) (i * 7);
    }
    CompositeByteBuf frame = Unpooled.compositeBuffer(8);
    frame.addComponent(true, Unpooled.wrappedBuffer(header));
    for (ByteBuf b : body) {
      frame.addComponent(true, b);
    }
    return frame;
  }

  private static ByteBuf direct(int bytes, int seed) {
    ByteBuf b = Unpooled.directBuffer(bytes);
    for (int i = 0; i < bytes; i++) {
      b.writeByte(seed + i * 13);
    }
    return b;
  }

  @Test
  void aFrameWithAHeapHeaderGoesOutDirectWithItsBodyViewedNotCopied() {
    ByteBuf body1 = direct(8192, 1);
    ByteBuf body2 = direct(5000, 2);
    body1.retain(); // the test's own references: the bytes must outlive the frame's release
    body2.retain();
    CompositeByteBuf frame = flightLikeFrame(body1, body2);
    // Write a slice, as HTTP/2 does (a DATA frame is a slice of the message), past the header.
    ByteBuf slice = frame.retainedSlice(100, frame.readableBytes() - 150);
    frame.release();
    byte[] expected = ByteBufUtil.getBytes(slice);
    assertFalse(slice.isDirect(), "precondition: Netty would copy this frame");

    EmbeddedChannel ch = new EmbeddedChannel(new DirectFrames());
    assertTrue(ch.writeOutbound(slice));
    ByteBuf out = ch.readOutbound();
    try {
      assertTrue(out.isDirect(), "the frame went out as heap: Netty copies it again");
      assertEquals(1, slice.refCnt(), "the frame lives as long as what replaced it");
      assertTrue(java.util.Arrays.equals(expected, ByteBufUtil.getBytes(out)));
      CompositeByteBuf parts = (CompositeByteBuf) out;
      assertEquals(3, parts.numComponents());
      assertEquals(
          body1.memoryAddress(),
          parts.component(1).memoryAddress(),
          "the body is handed over in place, not copied");
      assertEquals(body2.memoryAddress(), parts.component(2).memoryAddress());
    } finally {
      out.release();
    }
    assertEquals(0, slice.refCnt(), "released with what replaced it");
    assertEquals(1, body1.refCnt());
    body1.release();
    body2.release();
    assertFalse(ch.finish());
  }

  @Test
  void directOrSmallFramesGoAsTheyAre() {
    EmbeddedChannel ch = new EmbeddedChannel(new DirectFrames());
    ByteBuf direct = direct(DirectFrames.MIN_BYTES * 2, 3);
    CompositeByteBuf small = flightLikeFrame(direct(DirectFrames.MIN_BYTES / 2, 4));
    assertTrue(ch.writeOutbound(direct, small));
    ByteBuf first = ch.readOutbound();
    ByteBuf second = ch.readOutbound();
    assertSame(direct, first);
    assertSame(small, second);
    first.release();
    second.release();
    assertFalse(ch.finish());
  }

  @Test
  void aFrameWhoseWriteFailsIsReleased() {
    EmbeddedChannel ch =
        new EmbeddedChannel(new DirectFrames()) {
          @Override
          protected void doWrite(io.netty.channel.ChannelOutboundBuffer in) throws Exception {
            throw new java.io.IOException("broken pipe");
          }
        };
    CompositeByteBuf frame = flightLikeFrame(direct(16384, 5));
    ChannelFuture f = ch.pipeline().writeAndFlush(frame);
    assertFalse(f.isSuccess());
    assertEquals(0, frame.refCnt(), "a failed write must not leak the batch's buffers");
    ch.finishAndReleaseAll();
  }
}
