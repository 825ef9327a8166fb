package io.sluice.server;

import io.grpc.netty.NettyServerBuilder;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringServerSocketChannel;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.flight.FlightServer;

/**
 * The Netty transport under the Flight server's gRPC: {@code io_uring} where the kernel and Netty's
 * native library allow it, else {@code nio}. {@code auto} falls back and logs why once; an explicit
 * {@code io_uring} fails fast with the cause.
 */
public enum FlightTransport {
  AUTO,
  NIO,
  IO_URING;

  private static final Logger LOG = Logger.getLogger(FlightTransport.class.getName());
  private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();

  /**
   * Bytes a connection may have queued for its socket before Netty calls it unwritable, and the
   * level it must drain to before it is writable again. HTTP/2 hands the socket only what fits
   * below the high mark; at Netty's default (64 KiB) a 256 KiB batch went out in four or more
   * writes, each a wake-up of the transport thread and of the client. A megabyte lets a batch go
   * out in one. The bytes are the batches' own buffers, already within the memory budget.
   */
  static final int WRITE_HIGH_WATER = 1 << 20;

  static final int WRITE_LOW_WATER = WRITE_HIGH_WATER / 2;

  private static final Consumer<NettyServerBuilder> WRITE_BUFFER =
      b ->
          b.withChildOption(
              ChannelOption.WRITE_BUFFER_WATER_MARK,
              new WriteBufferWaterMark(WRITE_LOW_WATER, WRITE_HIGH_WATER));

  public String wireName() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static FlightTransport parse(String value) {
    for (FlightTransport t : values()) {
      if (t.wireName().equals(value.toLowerCase(Locale.ROOT))) {
        return t;
      }
    }
    throw new IllegalArgumentException(
        "transport=" + value + " must be one of auto, nio, io_uring");
  }

  /** The transport this choice resolves to here; {@code AUTO} never comes back. */
  FlightTransport resolve() {
    return switch (this) {
      case NIO -> NIO;
      case IO_URING -> {
        if (!IoUring.isAvailable()) {
          throw new IllegalStateException(
              "transport=io_uring is not available: " + IoUring.unavailabilityCause(),
              IoUring.unavailabilityCause());
        }
        yield IO_URING;
      }
      case AUTO -> {
        if (IoUring.isAvailable()) {
          yield IO_URING;
        }
        if (FALLBACK_LOGGED.compareAndSet(false, true)) {
          LOG.log(
              Level.INFO,
              "io_uring transport unavailable, Flight runs on nio: {0}",
              String.valueOf(IoUring.unavailabilityCause()));
        }
        yield NIO;
      }
    };
  }

  /**
   * Event loops a resolved transport owns, and the connections they accepted; closed with the
   * daemon.
   */
  static final class Loops implements AutoCloseable {
    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final ChannelGroup connections;
    private final AtomicBoolean closed = new AtomicBoolean();

    private Loops(EventLoopGroup boss, EventLoopGroup workers, ChannelGroup connections) {
      this.boss = boss;
      this.workers = workers;
      this.connections = connections;
    }

    /** The connections open now. */
    List<Channel> connections() {
      return new ArrayList<>(connections);
    }

    /**
     * Closes every connection the loops accepted, then shuts the loops down: each client learns at
     * once, and what a connection still held queued (batches for a client that stopped reading) is
     * released. Idempotent.
     */
    @Override
    public void close() {
      if (closed.compareAndSet(false, true)) {
        closeConnections();
        boss.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
        workers
            .shutdownGracefully(0, 2, TimeUnit.SECONDS)
            .awaitUninterruptibly(5, TimeUnit.SECONDS);
      }
    }

    /**
     * Closes the sockets of every connection now, whatever its streams are doing, and waits (5 s at
     * most in all) until they are closed. Not {@code Channel.close()}: that goes through gRPC's
     * handler, which starts a graceful GOAWAY and reports the close done at once while a stream
     * still waits on a client that stopped reading, the socket left open. The socket's close ends
     * every stream on it (the client sees UNAVAILABLE) and releases the frames they had queued.
     */
    void closeConnections() {
      List<ChannelFuture> closing = new ArrayList<>();
      for (Channel c : connections) {
        closing.add(c.closeFuture());
        try {
          c.eventLoop().execute(() -> c.unsafe().close(c.unsafe().voidPromise()));
        } catch (RejectedExecutionException loopGone) {
          LOG.fine(() -> "connection " + c + ": its event loop is shut down; not closed here");
        }
      }
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      for (ChannelFuture f : closing) {
        f.awaitUninterruptibly(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
      }
    }
  }

  /**
   * Worker loops that keep each connection they take (gRPC accepts them onto this group) in a
   * channel group, which drops it once closed, so the daemon can close them itself; and that put
   * {@link DirectFrames} next to each connection's socket.
   */
  private static final class TrackingLoops extends MultiThreadIoEventLoopGroup {
    private final ChannelGroup connections;

    TrackingLoops(IoHandlerFactory handlers, ChannelGroup connections) {
      super(handlers);
      this.connections = connections;
    }

    @Override
    public ChannelFuture register(Channel channel) {
      ChannelFuture registered = super.register(channel); // gives the channel its event loop
      connections.add(channel);
      channel.pipeline().addFirst(DirectFrames.NAME, new DirectFrames());
      return registered;
    }
  }

  /**
   * Puts the Flight server on this (resolved) transport, on event loops of the daemon's own (for
   * nio too, rather than gRPC's shared ones): stopping, the daemon can close them and with them the
   * connections of clients that stopped reading.
   */
  Loops apply(FlightServer.Builder builder) {
    boolean uring = this == IO_URING;
    EventLoopGroup boss =
        new MultiThreadIoEventLoopGroup(
            1, uring ? IoUringIoHandler.newFactory() : NioIoHandler.newFactory());
    ChannelGroup connections = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    EventLoopGroup workers =
        new TrackingLoops(
            uring ? IoUringIoHandler.newFactory() : NioIoHandler.newFactory(), connections);
    builder
        .transportHint(
            "netty.channelType",
            uring ? IoUringServerSocketChannel.class : NioServerSocketChannel.class)
        .transportHint("netty.bossEventLoopGroup", boss)
        .transportHint("netty.workerEventLoopGroup", workers)
        .transportHint("grpc.builderConsumer", WRITE_BUFFER);
    return new Loops(boss, workers, connections);
  }
}
