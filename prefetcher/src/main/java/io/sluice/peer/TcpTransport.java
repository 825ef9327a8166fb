package io.sluice.peer;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringServerSocketChannel;
import io.netty.channel.uring.IoUringSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The {@code tcp} peer transport: {@link PeerWire} messages framed by a u32 length on a Netty
 * socket, io_uring where the kernel has it and NIO otherwise. A server answers a fetch with the
 * held samples' bytes wrapped, not copied (their leases end when the write does). One event-loop
 * group, owned by the transport, runs every server and channel it makes.
 */
public final class TcpTransport implements PeerTransport {
  private static final Logger LOG = Logger.getLogger(TcpTransport.class.getName());

  public static final String NAME = "tcp";

  /** Largest fetch message a server accepts: {@link PeerWire#MAX_IDS} ids and a name. */
  static final int MAX_FETCH_FRAME = PeerWire.fetchBytes("", PeerWire.MAX_IDS) + 4096;

  /** Largest answer a channel accepts; callers split fetches well below it. */
  static final int MAX_ANSWER_FRAME = 1 << 30;

  /** A fetch with no answer after this long fails (the asker reads from storage). */
  public static final long DEFAULT_FETCH_TIMEOUT_MS = 10_000;

  private final EventLoopGroup group;
  private final boolean ioUring;
  private final long fetchTimeoutMs;
  private final List<AutoCloseable> open = new CopyOnWriteArrayList<>();

  private TcpTransport(int threads, long fetchTimeoutMs) {
    this.fetchTimeoutMs = fetchTimeoutMs;
    this.ioUring = IoUring.isAvailable();
    IoHandlerFactory factory = ioUring ? IoUringIoHandler.newFactory() : NioIoHandler.newFactory();
    this.group = new MultiThreadIoEventLoopGroup(threads, factory);
    if (!ioUring) {
      LOG.info(() -> "peer tcp: io_uring unavailable, using NIO: " + IoUring.unavailabilityCause());
    }
  }

  /** A transport with {@code threads} event loops (2 is plenty for a node's peer traffic). */
  public static TcpTransport create(int threads) {
    return create(threads, DEFAULT_FETCH_TIMEOUT_MS);
  }

  /** As above; a fetch not answered within {@code fetchTimeoutMs} fails. */
  public static TcpTransport create(int threads, long fetchTimeoutMs) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads=" + threads + " must be >= 1");
    }
    if (fetchTimeoutMs < 1) {
      throw new IllegalArgumentException("fetchTimeoutMs=" + fetchTimeoutMs + " must be >= 1");
    }
    return new TcpTransport(threads, fetchTimeoutMs);
  }

  @Override
  public String name() {
    return NAME;
  }

  /** Whether sockets run on io_uring (else NIO). */
  public boolean usesIoUring() {
    return ioUring;
  }

  @Override
  public PeerServer serve(InetSocketAddress bind, HeldSamples held) throws IOException {
    Server server = new Server(held);
    Class<? extends ServerChannel> type =
        ioUring ? IoUringServerSocketChannel.class : NioServerSocketChannel.class;
    ServerBootstrap b =
        new ServerBootstrap()
            .group(group)
            .channel(type)
            .childOption(ChannelOption.TCP_NODELAY, true)
            .childHandler(
                new ChannelInitializer<SocketChannel>() {
                  @Override
                  protected void initChannel(SocketChannel ch) {
                    server.connections.add(ch);
                    ch.pipeline()
                        .addLast(new LengthFieldBasedFrameDecoder(MAX_FETCH_FRAME, 0, 4, 0, 4))
                        .addLast(server.new Handler());
                  }
                });
    try {
      server.channel = b.bind(bind).sync().channel();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted binding peer server on " + bind, e);
    } catch (RuntimeException e) {
      throw new IOException("cannot bind peer server on " + bind + ": " + e.getMessage(), e);
    }
    open.add(server);
    return server;
  }

  @Override
  public PeerChannel connect(InetSocketAddress address) {
    Client c = new Client(address);
    open.add(c);
    return c;
  }

  @Override
  public void close() {
    for (AutoCloseable c : open) {
      try {
        c.close();
      } catch (Exception e) {
        LOG.log(Level.FINE, "peer tcp: closing " + c, e);
      }
    }
    open.clear();
    group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
  }

  /** Answers fetches on the event loop: lends, wraps, writes, and ends the leases when written. */
  private final class Server implements PeerServer {
    private final HeldSamples held;
    private final ServerStatsCounter counter = new ServerStatsCounter();
    final ChannelGroup connections = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    volatile Channel channel;

    Server(HeldSamples held) {
      this.held = held;
    }

    @Override
    public InetSocketAddress address() {
      return (InetSocketAddress) channel.localAddress();
    }

    @Override
    public PeerServerStats stats() {
      return counter.snapshot();
    }

    @Override
    public void close() {
      Channel ch = channel;
      if (ch != null) {
        ch.close().syncUninterruptibly();
      }
      connections.close().awaitUninterruptibly();
      open.remove(this);
    }

    final class Handler extends SimpleChannelInboundHandler<ByteBuf> {
      @Override
      protected void channelRead0(ChannelHandlerContext ctx, ByteBuf frame) {
        ByteBuffer in = frame.nioBuffer().order(ByteOrder.LITTLE_ENDIAN);
        PeerWire.Fetch fetch;
        try {
          fetch = PeerWire.readFetch(in);
        } catch (PeerException e) {
          counter.badRequests.increment();
          LOG.warning(
              () ->
                  "peer tcp: bad request from "
                      + ctx.channel().remoteAddress()
                      + ": "
                      + e.getMessage());
          ByteBuffer err = PeerWire.error(-1, e.getMessage());
          ctx.writeAndFlush(framed(Unpooled.wrappedBuffer(err)));
          return;
        }
        answer(ctx, fetch);
      }

      private void answer(ChannelHandlerContext ctx, PeerWire.Fetch fetch) {
        int n = fetch.ids().length;
        int[] lengths = new int[n];
        long most = 0;
        for (int length : fetch.lengths()) {
          most += Math.max(0, length);
        }
        // The samples are copied into one buffer of the connection's, each lease ending at its
        // copy: a peer that stops reading must not hold this node's cache memory (a job closing
        // waits for loans). The header, whose size is fixed, is written once the lengths are known.
        int headerBytes = PeerWire.answerHeaderBytes(n);
        ByteBuf out = ctx.alloc().directBuffer(4 + headerBytes + Math.toIntExact(most));
        HeldSamples.Copied copied;
        try {
          copied =
              HeldSamples.copyInto(
                  held,
                  fetch,
                  MemorySegment.ofBuffer(out.nioBuffer(4 + headerBytes, Math.toIntExact(most))),
                  lengths,
                  "peer tcp");
          out.writeInt(headerBytes + Math.toIntExact(copied.bytes()));
          PeerWire.putAnswer(
              out.nioBuffer(4, headerBytes).order(ByteOrder.LITTLE_ENDIAN),
              fetch.requestId(),
              lengths);
          out.writerIndex(4 + headerBytes + Math.toIntExact(copied.bytes()));
        } catch (RuntimeException e) {
          out.release();
          LOG.log(Level.WARNING, "peer tcp: answering a fetch of dataset=" + fetch.dataset(), e);
          ctx.writeAndFlush(
              framed(Unpooled.wrappedBuffer(PeerWire.error(fetch.requestId(), e.toString()))));
          return;
        }
        counter.fetches.increment();
        counter.samplesSent.add(copied.samples());
        counter.samplesMissed.add(n - copied.samples());
        counter.bytesSent.add(copied.bytes());
        ctx.writeAndFlush(out);
      }

      @Override
      public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        LOG.log(Level.FINE, "peer tcp: connection from " + ctx.channel().remoteAddress(), cause);
        ctx.close();
      }
    }
  }

  private static ByteBuf framed(ByteBuf body) {
    ByteBuf length = Unpooled.buffer(4).writeInt(body.readableBytes());
    return Unpooled.wrappedBuffer(length, body);
  }

  /** One connection to a peer, made on first use; fetches in flight keyed by request id. */
  private final class Client implements PeerChannel {
    private final InetSocketAddress address;
    private final AtomicLong nextId = new AtomicLong(1);
    private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
    private CompletableFuture<Channel> channel; // guarded by this
    private volatile PeerException failure;

    Client(InetSocketAddress address) {
      this.address = address;
    }

    record Pending(long[] ids, MemorySegment[] dsts, CompletableFuture<boolean[]> done) {}

    @Override
    public String describe() {
      return "tcp://" + address.getHostString() + ":" + address.getPort();
    }

    private synchronized CompletableFuture<Channel> channel() {
      if (channel == null) {
        CompletableFuture<Channel> f = new CompletableFuture<>();
        channel = f;
        Bootstrap b =
            new Bootstrap()
                .group(group)
                .channel(ioUring ? IoUringSocketChannel.class : NioSocketChannel.class)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5000)
                .handler(
                    new ChannelInitializer<SocketChannel>() {
                      @Override
                      protected void initChannel(SocketChannel ch) {
                        ch.pipeline()
                            .addLast(new LengthFieldBasedFrameDecoder(MAX_ANSWER_FRAME, 0, 4, 0, 4))
                            .addLast(new AnswerHandler());
                      }
                    });
        io.netty.channel.ChannelFuture connecting;
        try {
          connecting = b.connect(address);
        } catch (RuntimeException e) { // the event loops are shut down: the transport closed
          PeerException closed = new PeerException(describe() + ": cannot connect: " + e, e);
          f.completeExceptionally(closed);
          return f;
        }
        connecting.addListener(
            (io.netty.channel.ChannelFutureListener)
                cf -> {
                  if (cf.isSuccess()) {
                    cf.channel()
                        .closeFuture()
                        .addListener(
                            x -> fail(new PeerException(describe() + ": connection closed")));
                    f.complete(cf.channel());
                  } else {
                    PeerException e =
                        new PeerException(
                            describe() + ": cannot connect: " + cf.cause().getMessage(),
                            cf.cause());
                    fail(e);
                    f.completeExceptionally(e);
                  }
                });
      }
      return channel;
    }

    @Override
    public CompletableFuture<boolean[]> fetch(String dataset, long[] ids, MemorySegment[] dsts) {
      CompletableFuture<boolean[]> trivial = PeerWire.trivialAnswer(ids, dsts);
      if (trivial != null) {
        return trivial;
      }
      PeerException f = failure;
      if (f != null) {
        return CompletableFuture.failedFuture(f);
      }
      int[] lengths = new int[ids.length];
      long total = 0;
      for (int i = 0; i < ids.length; i++) {
        lengths[i] = Math.toIntExact(dsts[i].byteSize());
        total += lengths[i];
      }
      if (total + PeerWire.answerHeaderBytes(ids.length) > MAX_ANSWER_FRAME) {
        return CompletableFuture.failedFuture(
            new IllegalArgumentException(
                "fetch of " + total + " bytes must be <= " + MAX_ANSWER_FRAME));
      }
      long id = nextId.getAndIncrement();
      Pending p = new Pending(ids, dsts, new CompletableFuture<>());
      pending.put(id, p);
      // Whoever takes the entry out of pending first (the answer, the timeout, a failure) owns
      // the destinations: a late answer finds nothing and is dropped unread.
      try {
        group.schedule(
            () -> complete(id, null, PeerException.timedOut(describe(), fetchTimeoutMs)),
            fetchTimeoutMs,
            java.util.concurrent.TimeUnit.MILLISECONDS);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        complete(id, null, new PeerException(describe() + ": tcp transport closed", e));
        return p.done;
      }
      ByteBuffer msg = PeerWire.allocate(4 + PeerWire.fetchBytes(dataset, ids.length));
      msg.putInt(0);
      try {
        PeerWire.putFetch(msg, id, dataset, ids, lengths);
      } catch (IllegalArgumentException e) {
        pending.remove(id);
        return CompletableFuture.failedFuture(e);
      }
      msg.order(ByteOrder.BIG_ENDIAN).putInt(0, msg.position() - 4).flip();
      channel()
          .whenComplete(
              (ch, error) -> {
                if (error != null) {
                  complete(id, null, error);
                  return;
                }
                ch.writeAndFlush(Unpooled.wrappedBuffer(msg))
                    .addListener(
                        w -> {
                          if (!w.isSuccess()) {
                            complete(
                                id,
                                null,
                                new PeerException(
                                    describe() + ": send failed: " + w.cause(), w.cause()));
                          }
                        });
              });
      return p.done;
    }

    private void complete(long id, boolean[] filled, Throwable error) {
      Pending p = pending.remove(id);
      if (p == null) {
        return;
      }
      if (error != null) {
        p.done.completeExceptionally(error);
      } else {
        p.done.complete(filled);
      }
    }

    private void fail(PeerException e) {
      if (failure == null) {
        failure = e;
      }
      for (Long id : pending.keySet()) {
        complete(id, null, e);
      }
    }

    final class AnswerHandler extends SimpleChannelInboundHandler<ByteBuf> {
      @Override
      protected void channelRead0(ChannelHandlerContext ctx, ByteBuf frame) {
        ByteBuffer in = frame.nioBuffer().order(ByteOrder.LITTLE_ENDIAN);
        try {
          byte kind = PeerWire.kind(in);
          long id = in.getLong();
          if (kind == PeerWire.ERROR) {
            String message = PeerWire.getError(in);
            PeerException e = new PeerException(describe() + " answered an error: " + message);
            if (id == -1) {
              fail(e);
              ctx.close();
            } else {
              complete(id, null, e);
            }
            return;
          }
          if (kind != PeerWire.ANSWER) {
            throw new PeerException("kind=" + kind + " is not an answer");
          }
          Pending p = pending.remove(id);
          if (p == null) {
            return; // timed out or failed already: its destinations are no longer ours
          }
          try {
            p.done.complete(fill(p, id, in));
          } catch (PeerException | RuntimeException e) {
            p.done.completeExceptionally(e);
            throw e;
          }
        } catch (PeerException | RuntimeException e) {
          PeerException pe =
              e instanceof PeerException x
                  ? x
                  : new PeerException(describe() + ": bad answer: " + e, e);
          fail(pe);
          ctx.close();
        }
      }

      /** Copies a held answer's samples into their destinations. */
      private boolean[] fill(Pending p, long id, ByteBuffer in) throws PeerException {
        int[] lengths = PeerWire.getAnswerLengths(in, p.ids.length);
        MemorySegment body = MemorySegment.ofBuffer(in);
        long at = 0;
        boolean[] filled = new boolean[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
          if (lengths[i] < 0) {
            continue;
          }
          if (lengths[i] != p.dsts[i].byteSize() || at + lengths[i] > body.byteSize()) {
            throw new PeerException(
                "answer to requestId="
                    + id
                    + ": sample "
                    + p.ids[i]
                    + " lengthBytes="
                    + lengths[i]
                    + " does not fit (expected "
                    + p.dsts[i].byteSize()
                    + ", "
                    + (body.byteSize() - at)
                    + " left)");
          }
          MemorySegment.copy(body, at, p.dsts[i], 0, lengths[i]);
          at += lengths[i];
          filled[i] = true;
        }
        return filled;
      }

      @Override
      public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        fail(new PeerException(describe() + ": " + cause.getMessage(), cause));
        ctx.close();
      }
    }

    @Override
    public void close() {
      CompletableFuture<Channel> c;
      synchronized (this) {
        c = channel;
      }
      fail(new PeerException(describe() + ": channel closed"));
      if (c != null) {
        c.thenAccept(Channel::close);
      }
      open.remove(this);
    }
  }
}
