package io.sluice.server;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
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
 * hundred bytes a batch) are copied. The rewritten frame holds a reference to the one it replaces,
 * released when the transport releases it, so the viewed memory lives as long as it is used.
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
    ByteBuffer[] parts = frame.nioBuffers();
    CompositeByteBuf out = new Owning(ctx.alloc(), Math.max(2, parts.length), frame.retain());
    try {
      for (ByteBuffer part : parts) {
        if (!part.hasRemaining()) {
          continue;
        }
        if (part.isDirect()) {
          out.addComponent(true, Unpooled.wrappedBuffer(part));
        } else {
          ByteBuf copy = ctx.alloc().directBuffer(part.remaining());
          out.addComponent(true, copy.writeBytes(part)); // a component's length is set as added
        }
      }
    } catch (Throwable e) { // out of direct memory: send the frame as it is, Netty copies it
      out.release();
      ctx.write(msg, promise);
      return;
    }
    frame.release(); // out holds the frame now
    rewritten++;
    ctx.write(out, promise);
  }

  /**
   * A direct composite of views into {@code frame}, holding one reference to it: the frame, and the
   * batch buffers behind it, live until the transport releases this (after the socket took the
   * bytes, or on failure), however long the transport keeps it.
   */
  private static final class Owning extends CompositeByteBuf {
    private final ByteBuf frame;

    Owning(ByteBufAllocator alloc, int components, ByteBuf frame) {
      super(alloc, true, components);
      this.frame = frame;
    }

    @Override
    protected void deallocate() {
      super.deallocate();
      frame.release();
    }
  }
}
