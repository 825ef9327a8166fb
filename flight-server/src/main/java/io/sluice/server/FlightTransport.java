package io.sluice.server;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringServerSocketChannel;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
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

  /** Event loops a resolved transport owns; closed with the daemon. */
  static final class Loops implements AutoCloseable {
    private final EventLoopGroup boss;
    private final EventLoopGroup workers;

    private Loops(EventLoopGroup boss, EventLoopGroup workers) {
      this.boss = boss;
      this.workers = workers;
    }

    @Override
    public void close() {
      if (boss != null) {
        boss.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
        workers
            .shutdownGracefully(0, 2, TimeUnit.SECONDS)
            .awaitUninterruptibly(5, TimeUnit.SECONDS);
      }
    }
  }

  /** Puts the Flight server on this (resolved) transport; nio is gRPC's default. */
  Loops apply(FlightServer.Builder builder) {
    if (this != IO_URING) {
      return new Loops(null, null);
    }
    EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, IoUringIoHandler.newFactory());
    EventLoopGroup workers = new MultiThreadIoEventLoopGroup(IoUringIoHandler.newFactory());
    builder
        .transportHint("netty.channelType", IoUringServerSocketChannel.class)
        .transportHint("netty.bossEventLoopGroup", boss)
        .transportHint("netty.workerEventLoopGroup", workers);
    return new Loops(boss, workers);
  }
}
