package io.sluice.server;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;
import java.nio.ByteBuffer;

/**
 * Hands the socket a frame's off-heap bytes in place. Flight sends a batch as one composite buffer:
 * a small heap header (the FlightData fields before the body) and the batch's Arrow buffers, which
 * are off-heap. A composite with any heap part is not direct, so Netty's io_uring and nio channels
 * copied every HTTP/2 DATA frame of every batch into a new direct buffer: a third of the transport
 * thread's time at 4 KiB samples. Sitting next to the socket, this handler rewrites such a frame as
 * a direct composite whose off-heap parts are views of the same memory and whose heap parts (a few
 * hundred bytes a batch) are copied; the frame it replaces is released once the write completes or
 * fails, which is what keeps the viewed memory alive until then.
 */
final class DirectFrames extends ChannelOutboundHandlerAdapter {
  static final String NAME = "sluice-direct-frames";

  /** Below this a frame goes as it is: Netty's copy of it costs less than the rewrite. */
  static final int MIN_BYTES = 4096;

  private long rewritten; // frames handed over in place; read on the connection's event loop

  /** Frames this connection handed to its socket in place so far (call on its event loop). */
  long rewritten() {
    return rewritten;
  }

  @Override
  public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
    if (!(msg instanceof ByteBuf frame) || frame.isDirect() || frame.readableBytes() < MIN_BYTES) {
      ctx.write(msg, promise);
      return;
    }
    CompositeByteBuf out;
    try {
      out = inPlace(ctx, frame);
    } catch (RuntimeException e) {
      ctx.write(msg, promise); // as before: Netty copies it
      return;
    }
    rewritten++;
    ChannelPromise done = promise.unvoid();
    done.addListener(f -> frame.release());
    ctx.write(out, done);
  }

  /** A direct composite of {@code frame}'s readable bytes: off-heap parts viewed, heap copied. */
  private static CompositeByteBuf inPlace(ChannelHandlerContext ctx, ByteBuf frame) {
    ByteBuffer[] parts = frame.nioBuffers();
    CompositeByteBuf out = ctx.alloc().compositeDirectBuffer(Math.max(2, parts.length));
    try {
      for (ByteBuffer part : parts) {
        if (!part.hasRemaining()) {
          continue;
        }
        if (part.isDirect()) {
          out.addComponent(true, Unpooled.wrappedBuffer(part));
        } else {
          ByteBuf copy = ctx.alloc().directBuffer(part.remaining());
          copy.writeBytes(part);
          out.addComponent(true, copy);
        }
      }
      return out;
    } catch (RuntimeException e) {
      out.release();
      throw e;
    }
  }
}
