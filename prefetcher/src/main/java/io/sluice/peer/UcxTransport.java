package io.sluice.peer;

import io.sluice.nativeio.Ucx;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.openucx.jucx.UcxCallback;
import org.openucx.jucx.UcxUtils;
import org.openucx.jucx.ucp.UcpAmData;
import org.openucx.jucx.ucp.UcpConstants;
import org.openucx.jucx.ucp.UcpContext;
import org.openucx.jucx.ucp.UcpEndpoint;
import org.openucx.jucx.ucp.UcpEndpointParams;
import org.openucx.jucx.ucp.UcpListener;
import org.openucx.jucx.ucp.UcpListenerParams;
import org.openucx.jucx.ucp.UcpMemory;
import org.openucx.jucx.ucp.UcpParams;
import org.openucx.jucx.ucp.UcpRemoteKey;
import org.openucx.jucx.ucp.UcpRequest;
import org.openucx.jucx.ucp.UcpWorker;
import org.openucx.jucx.ucp.UcpWorkerParams;
import org.openucx.jucx.ucs.UcsConstants;

/**
 * The {@code ucx} peer transport over JUCX: control messages are UCP active messages, sample bytes
 * move by one-sided gets. A server copies the held samples of a fetch into a slot run of its
 * registered staging region and answers with the region's address, remote key and slot; the asker
 * gets the bytes straight into its destinations (cache memory) and releases the slot. The same code
 * runs over RDMA verbs on a host with an RDMA device and over TCP elsewhere (UCX picks).
 *
 * <p>One UCP worker per transport, owned by one progress thread ({@code sluice-ucx}): every UCX
 * call is made on it (tasks queued, the worker signalled), and active-message callbacks run on it.
 */
public final class UcxTransport implements PeerTransport {
  private static final Logger LOG = Logger.getLogger(UcxTransport.class.getName());

  public static final String NAME = "ucx";

  private static final int AM_FETCH = 1;
  private static final int AM_ANSWER = 2;
  private static final int AM_RELEASE = 3;
  private static final int AM_ERROR = 4;

  /** Staging bytes a server registers for answers in flight. */
  static final long DEFAULT_STAGING_BYTES = 64L << 20;

  /** A staging slot; an answer takes a run of them. */
  static final int SLOT_BYTES = 1 << 20;

  private final UcpContext context;
  private final UcpWorker worker;
  private final Thread progress;
  private final Queue<Runnable> tasks = new ConcurrentLinkedQueue<>();
  private final AtomicLong nextRequest = new AtomicLong(1);
  private final long stagingBytes;
  private final long fetchTimeoutMs;
  private final java.util.concurrent.ScheduledExecutorService timers;
  private volatile boolean closed;

  // Owned by the progress thread.
  private final Map<Long, Pending> pending = new HashMap<>();
  private final List<Server> servers = new ArrayList<>();
  private final List<Client> clients = new ArrayList<>();

  private UcxTransport(long stagingBytes, long fetchTimeoutMs) {
    this.stagingBytes = stagingBytes;
    this.fetchTimeoutMs = fetchTimeoutMs;
    this.timers =
        java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("sluice-ucx-timer").factory());
    this.context =
        new UcpContext(
            new UcpParams().requestAmFeature().requestRmaFeature().requestWakeupFeature());
    this.worker =
        context.newWorker(
            new UcpWorkerParams().requestWakeupRX().requestWakeupTX().requestWakeupRMA());
    worker.setAmRecvHandler(AM_FETCH, this::onFetch);
    worker.setAmRecvHandler(AM_ANSWER, this::onAnswer);
    worker.setAmRecvHandler(AM_RELEASE, this::onRelease);
    worker.setAmRecvHandler(AM_ERROR, this::onError);
    this.progress = Thread.ofPlatform().daemon().name("sluice-ucx").unstarted(this::run);
    progress.start();
  }

  /**
   * A transport with the default staging region.
   *
   * @throws PeerException naming the cause when UCX cannot start here (no libucp, no JUCX native)
   */
  public static UcxTransport create() throws PeerException {
    return create(DEFAULT_STAGING_BYTES, TcpTransport.DEFAULT_FETCH_TIMEOUT_MS);
  }

  /**
   * A transport whose servers register {@code stagingBytes} for answers in flight (a fetch waits
   * for room) and whose fetches fail when unanswered after {@code fetchTimeoutMs}.
   */
  public static UcxTransport create(long stagingBytes, long fetchTimeoutMs) throws PeerException {
    if (fetchTimeoutMs < 1) {
      throw new IllegalArgumentException("fetchTimeoutMs=" + fetchTimeoutMs + " must be >= 1");
    }
    if (stagingBytes < SLOT_BYTES) {
      throw new IllegalArgumentException(
          "stagingBytes=" + stagingBytes + " must be >= " + SLOT_BYTES);
    }
    if (!Ucx.isAvailable()) {
      // Probed first also for what the probe does on success: it hands the crash-signal
      // handlers libucp installs back to the JVM, before JUCX loads it.
      throw new PeerException(
          "ucx unavailable: " + Ucx.unavailabilityCause().getMessage(), Ucx.unavailabilityCause());
    }
    try {
      return new UcxTransport(stagingBytes, fetchTimeoutMs);
    } catch (UnsatisfiedLinkError | RuntimeException | ExceptionInInitializerError e) {
      throw new PeerException("ucx unavailable: " + e, e);
    } catch (NoClassDefFoundError e) {
      throw new PeerException(
          "ucx unavailable: JUCX is not on the class path: " + e.getMessage(), e);
    }
  }

  @Override
  public String name() {
    return NAME;
  }

  private void run() {
    try {
      while (!closed) {
        Runnable t;
        while ((t = tasks.poll()) != null) {
          try {
            t.run();
          } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "peer ucx: task failed", e);
          }
        }
        if (worker.progress() == 0 && tasks.isEmpty() && !closed) {
          worker.waitForEvents();
        }
      }
    } catch (Exception e) {
      LOG.log(Level.SEVERE, "peer ucx: progress thread stopped", e);
      closed = true;
    } finally {
      shutdown();
    }
  }

  /** Runs {@code task} on the progress thread. */
  private void onProgress(Runnable task) {
    tasks.add(task);
    worker.signal();
  }

  private <T> CompletableFuture<T> call(java.util.function.Supplier<T> task) {
    CompletableFuture<T> f = new CompletableFuture<>();
    if (closed) {
      f.completeExceptionally(new PeerException("ucx transport closed"));
      return f;
    }
    onProgress(
        () -> {
          try {
            f.complete(task.get());
          } catch (RuntimeException e) {
            f.completeExceptionally(e);
          }
        });
    return f;
  }

  @Override
  public PeerServer serve(InetSocketAddress bind, HeldSamples held) throws IOException {
    try {
      return call(() -> new Server(bind, held)).join();
    } catch (java.util.concurrent.CompletionException e) {
      throw new IOException(
          "cannot serve peers over ucx on " + bind + ": " + e.getCause(), e.getCause());
    }
  }

  @Override
  public PeerChannel connect(InetSocketAddress address) throws IOException {
    if (address.isUnresolved()) {
      address = new InetSocketAddress(address.getHostString(), address.getPort());
      if (address.isUnresolved()) {
        throw new IOException("cannot resolve peer " + address.getHostString());
      }
    }
    Client c = new Client(address);
    onProgress(c::open);
    return c;
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    timers.shutdownNow();
    worker.signal();
    try {
      progress.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** On the progress thread, last: fails what is in flight and frees UCX objects. */
  private void shutdown() {
    PeerException e = new PeerException("ucx transport closed");
    for (Pending p : pending.values()) {
      p.done.completeExceptionally(e);
    }
    pending.clear();
    for (Client c : List.copyOf(clients)) {
      c.closeNow(e);
    }
    for (Server s : List.copyOf(servers)) {
      s.closeNow();
    }
    Runnable t;
    while ((t = tasks.poll()) != null) {
      try {
        t.run();
      } catch (RuntimeException ignored) {
        // closing: nothing left to tell
      }
    }
    worker.close();
    context.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Server side

  /** A listener and its registered staging region. Owned by the progress thread. */
  private final class Server implements PeerServer {
    private final HeldSamples held;
    private final UcpListener listener;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment staging;
    private final UcpMemory memory;
    private final byte[] rkey;
    private final BitSet used;
    private final int slots;
    private final Map<Long, List<int[]>> slotsByEp = new HashMap<>(); // ep id -> [slot, count]
    private final ArrayDeque<Runnable> waiting = new ArrayDeque<>();
    private final ServerStatsCounter counter = new ServerStatsCounter();
    private final InetSocketAddress address;

    Server(InetSocketAddress bind, HeldSamples held) {
      this.held = held;
      this.slots = (int) (stagingBytes / SLOT_BYTES);
      this.used = new BitSet(slots);
      this.staging = arena.allocate((long) slots * SLOT_BYTES, 4096);
      this.memory = context.registerMemory(staging.asByteBuffer());
      ByteBuffer k = memory.getRemoteKeyBuffer();
      this.rkey = new byte[k.remaining()];
      k.get(rkey);
      this.listener =
          worker.newListener(
              new UcpListenerParams().setSockAddr(bind).setConnectionHandler(this::accept));
      this.address = listener.getAddress();
      servers.add(this);
    }

    private void accept(org.openucx.jucx.ucp.UcpConnectionRequest request) {
      worker.newEndpoint(
          new UcpEndpointParams()
              .setConnectionRequest(request)
              .setPeerErrorHandlingMode()
              .setErrorHandler((ep, status, message) -> dropped(ep)));
    }

    /** A client went away: its slots come back (it will not release them). */
    private void dropped(UcpEndpoint ep) {
      List<int[]> held = slotsByEp.remove(ep.getNativeId());
      if (held != null) {
        for (int[] run : held) {
          used.clear(run[0], run[0] + run[1]);
        }
        drainWaiting();
      }
      ep.close();
    }

    @Override
    public InetSocketAddress address() {
      return address;
    }

    @Override
    public PeerServerStats stats() {
      return counter.snapshot();
    }

    @Override
    public void close() {
      call(() -> {
            closeNow();
            return null;
          })
          .exceptionally(e -> null)
          .join();
    }

    void closeNow() {
      if (!servers.remove(this)) {
        return;
      }
      listener.close();
      memory.deregister();
      arena.close();
    }

    boolean owns(long address) {
      return address >= staging.address() && address < staging.address() + staging.byteSize();
    }

    void fetch(UcpEndpoint replyEp, PeerWire.Fetch fetch) {
      long total = 0;
      for (int length : fetch.lengths()) {
        total += length;
      }
      int need = (int) Math.max(1, (total + SLOT_BYTES - 1) / SLOT_BYTES);
      if (need > slots) {
        sendError(
            replyEp,
            fetch.requestId(),
            "fetch of " + total + " bytes exceeds the staging region of " + staging.byteSize());
        return;
      }
      int start = findRun(need);
      if (start < 0) {
        waiting.add(() -> fetch(replyEp, fetch)); // answered when a slot run comes back
        return;
      }
      used.set(start, start + need);
      int n = fetch.ids().length;
      int[] lengths = new int[n];
      long at = (long) start * SLOT_BYTES;
      int sent = 0;
      long bytes = 0;
      for (int i = 0; i < n; i++) {
        lengths[i] = -1;
        HeldSamples.Lease l;
        try {
          l = held.lend(fetch.dataset(), fetch.ids()[i]);
        } catch (RuntimeException e) {
          l = null;
          LOG.log(
              Level.WARNING,
              "peer ucx: lending sample " + fetch.ids()[i] + " of dataset=" + fetch.dataset(),
              e);
        }
        if (l == null) {
          continue;
        }
        try (HeldSamples.Lease lent = l) {
          if (lent.bytes().byteSize() == fetch.lengths()[i]) {
            MemorySegment.copy(lent.bytes(), 0, staging, at, fetch.lengths()[i]);
            lengths[i] = fetch.lengths()[i];
            at += lengths[i];
            sent++;
            bytes += lengths[i];
          }
        }
      }
      counter.fetches.increment();
      counter.samplesSent.add(sent);
      counter.samplesMissed.add(n - sent);
      counter.bytesSent.add(bytes);
      if (sent == 0) {
        used.clear(start, start + need);
      } else {
        slotsByEp
            .computeIfAbsent(replyEp.getNativeId(), k -> new ArrayList<>())
            .add(new int[] {start, need});
      }
      ByteBuffer answer =
          PeerWire.allocate(PeerWire.answerHeaderBytes(n) + 8 + 4 + 2 + rkey.length);
      PeerWire.putAnswer(answer, fetch.requestId(), lengths);
      answer.putLong(staging.address() + (long) start * SLOT_BYTES).putInt(sent == 0 ? -1 : start);
      answer.putShort((short) rkey.length).put(rkey).flip();
      send(replyEp, AM_ANSWER, answer, false);
    }

    void release(long epId, int slot) {
      List<int[]> runs = slotsByEp.get(epId);
      if (runs == null) {
        return;
      }
      for (int i = 0; i < runs.size(); i++) {
        if (runs.get(i)[0] == slot) {
          int[] run = runs.remove(i);
          used.clear(run[0], run[0] + run[1]);
          drainWaiting();
          return;
        }
      }
    }

    private void drainWaiting() {
      int n = waiting.size();
      for (int i = 0; i < n; i++) {
        waiting.poll().run(); // re-queues itself when there is still no room
      }
    }

    private int findRun(int need) {
      int from = 0;
      while (from + need <= slots) {
        int start = used.nextClearBit(from);
        if (start + need > slots) {
          return -1;
        }
        int end = used.nextSetBit(start);
        if (end < 0 || end - start >= need) {
          return start;
        }
        from = end;
      }
      return -1;
    }
  }

  /** Sends an active message; the callback holds {@code data} until UCX is done with it. */
  private void send(UcpEndpoint ep, int id, ByteBuffer data, boolean reply) {
    ep.sendAmNonBlocking(
        id,
        0,
        0,
        UcxUtils.getAddress(data),
        data.remaining(),
        reply ? UcpConstants.UCP_AM_SEND_FLAG_REPLY : 0,
        new Sent(id, data));
  }

  /** Completion of a send: keeps its body reachable (UCX reads it by address) until then. */
  private static final class Sent extends UcxCallback {
    private final int id;
    private final ByteBuffer body;

    Sent(int id, ByteBuffer body) {
      this.id = id;
      this.body = body;
    }

    @Override
    public void onError(int status, String message) {
      LOG.fine(
          () ->
              "peer ucx: send of message "
                  + id
                  + " ("
                  + body.limit()
                  + " bytes) failed: "
                  + message);
    }
  }

  /** Gives a server back the staging slot run at {@code remote}. */
  private void sendRelease(UcpEndpoint ep, long remote, int slot) {
    ByteBuffer release = PeerWire.allocate(PeerWire.PREAMBLE_BYTES + 8 + 4);
    release.putInt(PeerWire.MAGIC).put(PeerWire.RELEASE).putLong(0).putLong(remote).putInt(slot);
    send(ep, AM_RELEASE, release.flip(), true);
  }

  private void sendError(UcpEndpoint ep, long requestId, String message) {
    send(ep, AM_ERROR, PeerWire.error(requestId, message), false);
  }

  /**
   * Hands an active message's body to {@code handler} on the progress thread: at once when it came
   * eagerly, after a receive when it came by rendezvous.
   */
  private int receive(
      UcpAmData data,
      UcpEndpoint ep,
      java.util.function.BiConsumer<ByteBuffer, UcpEndpoint> handler) {
    if (data == null) {
      return UcsConstants.STATUS.UCS_OK;
    }
    if (data.isDataValid()) {
      ByteBuffer view = UcxUtils.getByteBufferView(data.getDataAddress(), data.getLength());
      ByteBuffer copy = PeerWire.allocate((int) data.getLength());
      copy.put(view).flip();
      handler.accept(copy, ep);
      return UcsConstants.STATUS.UCS_OK;
    }
    ByteBuffer into = PeerWire.allocate((int) data.getLength());
    data.receive(
        UcxUtils.getAddress(into),
        new UcxCallback() {
          @Override
          public void onSuccess(UcpRequest request) {
            handler.accept(into, ep);
          }

          @Override
          public void onError(int status, String message) {
            LOG.warning(() -> "peer ucx: receiving a message body failed: " + message);
          }
        });
    return UcsConstants.STATUS.UCS_OK;
  }

  private int onFetch(long headerAddress, long headerSize, UcpAmData data, UcpEndpoint replyEp) {
    return receive(
        data,
        replyEp,
        (in, ep) -> {
          PeerWire.Fetch fetch;
          try {
            byte kind = PeerWire.kind(in);
            if (kind != PeerWire.FETCH) {
              throw new PeerException("kind=" + kind + " is not a fetch");
            }
            fetch = PeerWire.getFetch(in);
          } catch (PeerException e) {
            for (Server s : servers) {
              s.counter.badRequests.increment();
            }
            LOG.warning(() -> "peer ucx: bad request: " + e.getMessage());
            sendError(ep, -1, e.getMessage());
            return;
          }
          if (servers.isEmpty()) {
            sendError(ep, fetch.requestId(), "this daemon serves no peers");
            return;
          }
          servers.getFirst().fetch(ep, fetch);
        });
  }

  private int onRelease(long headerAddress, long headerSize, UcpAmData data, UcpEndpoint replyEp) {
    return receive(
        data,
        replyEp,
        (in, ep) -> {
          try {
            if (PeerWire.kind(in) != PeerWire.RELEASE) {
              return;
            }
            in.getLong();
            long address = in.getLong();
            int slot = in.getInt();
            for (Server s : servers) {
              if (s.owns(address)) {
                s.release(ep.getNativeId(), slot);
              }
            }
          } catch (PeerException | RuntimeException e) {
            LOG.warning(() -> "peer ucx: bad release: " + e);
          }
        });
  }

  // ---------------------------------------------------------------------------------------------
  // Client side

  /** A fetch in flight. Owned by the progress thread. */
  private record Pending(
      Client client, long[] ids, MemorySegment[] dsts, CompletableFuture<boolean[]> done) {}

  private int onAnswer(long headerAddress, long headerSize, UcpAmData data, UcpEndpoint replyEp) {
    return receive(data, replyEp, this::answered);
  }

  private int onError(long headerAddress, long headerSize, UcpAmData data, UcpEndpoint replyEp) {
    return receive(
        data,
        replyEp,
        (in, ep) -> {
          try {
            PeerWire.kind(in);
            long id = in.getLong();
            String message = PeerWire.getError(in);
            Pending p = pending.remove(id);
            if (p != null) {
              p.done.completeExceptionally(
                  new PeerException(p.client.describe() + " answered an error: " + message));
            } else {
              LOG.warning(() -> "peer ucx: a peer answered an error: " + message);
            }
          } catch (PeerException | RuntimeException e) {
            LOG.warning(() -> "peer ucx: bad error message: " + e);
          }
        });
  }

  private void answered(ByteBuffer in, UcpEndpoint replyEp) {
    Pending p = null;
    try {
      if (PeerWire.kind(in) != PeerWire.ANSWER) {
        throw new PeerException("not an answer");
      }
      long id = in.getLong();
      p = pending.remove(id);
      if (p == null) {
        // Timed out here meanwhile: nothing is read, but the server's slot run comes back.
        int count = in.getInt();
        in.position(in.position() + 4 * count);
        long remote = in.getLong();
        int slot = in.getInt();
        if (slot >= 0) {
          sendRelease(replyEp, remote, slot);
        }
        LOG.fine(() -> "peer ucx: answer to requestId=" + id + ", no longer in flight");
        return;
      }
      int[] lengths = PeerWire.getAnswerLengths(in, p.ids.length);
      long remote = in.getLong();
      int slot = in.getInt();
      byte[] key = new byte[Short.toUnsignedInt(in.getShort())];
      in.get(key);
      p.client.gets(id, p, lengths, remote, slot, key);
    } catch (PeerException | RuntimeException e) {
      if (p != null) {
        p.done.completeExceptionally(
            e instanceof PeerException pe ? pe : new PeerException("bad answer: " + e, e));
      } else {
        LOG.warning(() -> "peer ucx: bad answer: " + e);
      }
    }
  }

  /** One endpoint to a peer's listener. Its state is owned by the progress thread. */
  private final class Client implements PeerChannel {
    private final InetSocketAddress address;
    private UcpEndpoint ep;
    private UcpRemoteKey rkey; // unpacked once: a server's staging key does not change
    private byte[] rkeyBytes;
    private volatile PeerException failure;

    Client(InetSocketAddress address) {
      this.address = address;
    }

    void open() {
      try {
        ep =
            worker.newEndpoint(
                new UcpEndpointParams()
                    .setSocketAddress(address)
                    .setPeerErrorHandlingMode()
                    .setErrorHandler(
                        (e, status, message) ->
                            closeNow(
                                new PeerException(
                                    describe() + ": " + message + " (status " + status + ")"))));
        clients.add(this);
      } catch (RuntimeException e) {
        failure = new PeerException(describe() + ": cannot connect: " + e.getMessage(), e);
      }
    }

    @Override
    public String describe() {
      return "ucx://" + address.getHostString() + ":" + address.getPort();
    }

    @Override
    public CompletableFuture<boolean[]> fetch(String dataset, long[] ids, MemorySegment[] dsts) {
      if (ids.length != dsts.length) {
        return CompletableFuture.failedFuture(
            new IllegalArgumentException(
                "ids=" + ids.length + " and dsts=" + dsts.length + " must match"));
      }
      if (ids.length == 0) {
        return CompletableFuture.completedFuture(new boolean[0]);
      }
      int[] lengths = new int[ids.length];
      long total = 0;
      for (int i = 0; i < ids.length; i++) {
        lengths[i] = Math.toIntExact(dsts[i].byteSize());
        total += lengths[i];
      }
      if (total > stagingBytes) {
        return CompletableFuture.failedFuture(
            new IllegalArgumentException(
                "fetch of " + total + " bytes must be <= " + stagingBytes));
      }
      long id = nextRequest.getAndIncrement();
      ByteBuffer msg = PeerWire.allocate(PeerWire.fetchBytes(dataset, ids.length));
      try {
        PeerWire.putFetch(msg, id, dataset, ids, lengths);
      } catch (IllegalArgumentException e) {
        return CompletableFuture.failedFuture(e);
      }
      msg.flip();
      CompletableFuture<boolean[]> done = new CompletableFuture<>();
      if (closed) {
        done.completeExceptionally(new PeerException(describe() + ": ucx transport closed"));
        return done;
      }
      onProgress(
          () -> {
            PeerException f = failure;
            if (f != null || ep == null) {
              done.completeExceptionally(
                  f != null ? f : new PeerException(describe() + ": not connected"));
              return;
            }
            pending.put(id, new Pending(this, ids, dsts, done));
            send(ep, AM_FETCH, msg, true);
            // Only an unanswered fetch times out: once answered it is out of pending and its gets
            // end in success or an endpoint error, after which nothing writes its destinations.
            timers.schedule(
                () ->
                    onProgress(
                        () -> {
                          Pending p = pending.remove(id);
                          if (p != null) {
                            p.done.completeExceptionally(
                                PeerException.timedOut(describe(), fetchTimeoutMs));
                          }
                        }),
                fetchTimeoutMs,
                java.util.concurrent.TimeUnit.MILLISECONDS);
          });
      return done;
    }

    /** Gets each held sample from the server's staging region, then releases the slot run. */
    void gets(long id, Pending p, int[] lengths, long remote, int slot, byte[] key)
        throws PeerException {
      boolean[] filled = new boolean[lengths.length];
      if (slot < 0) {
        p.done.complete(filled);
        return;
      }
      if (rkey == null || !java.util.Arrays.equals(key, rkeyBytes)) {
        if (rkey != null) {
          rkey.close();
        }
        ByteBuffer kb = ByteBuffer.allocateDirect(key.length);
        kb.put(key).flip();
        rkey = ep.unpackRemoteKey(kb);
        rkeyBytes = key;
      }
      List<Runnable> copies = new ArrayList<>();
      int[] outstanding = {0};
      boolean[] broken = {false};
      long at = remote;
      for (int i = 0; i < lengths.length; i++) {
        if (lengths[i] < 0) {
          continue;
        }
        if (lengths[i] != p.dsts[i].byteSize()) {
          throw new PeerException(
              describe()
                  + ": sample "
                  + p.ids[i]
                  + " lengthBytes="
                  + lengths[i]
                  + " expected "
                  + p.dsts[i].byteSize());
        }
        filled[i] = true;
        MemorySegment dst = p.dsts[i];
        long target;
        if (dst.isNative()) {
          target = dst.address();
        } else { // a heap destination: get into a bounce buffer, copy after
          ByteBuffer bounce = ByteBuffer.allocateDirect(lengths[i]);
          target = UcxUtils.getAddress(bounce);
          copies.add(
              () -> MemorySegment.copy(MemorySegment.ofBuffer(bounce), 0, dst, 0, dst.byteSize()));
        }
        outstanding[0]++;
        ep.getNonBlocking(
            at,
            rkey,
            target,
            lengths[i],
            new UcxCallback() {
              @Override
              public void onSuccess(UcpRequest request) {
                if (--outstanding[0] == 0 && !broken[0]) {
                  finish(p, filled, copies, remote, slot);
                }
              }

              @Override
              public void onError(int status, String message) {
                if (!broken[0]) {
                  broken[0] = true;
                  p.done.completeExceptionally(
                      new PeerException(describe() + ": get failed: " + message));
                }
              }
            });
        at += lengths[i];
      }
      if (outstanding[0] == 0) {
        finish(p, filled, copies, remote, slot);
      }
    }

    private void finish(Pending p, boolean[] filled, List<Runnable> copies, long remote, int slot) {
      sendRelease(ep, remote, slot);
      try {
        copies.forEach(Runnable::run);
        p.done.complete(filled);
      } catch (RuntimeException e) {
        p.done.completeExceptionally(e);
      }
    }

    void closeNow(PeerException why) {
      if (failure == null) {
        failure = why;
      }
      pending
          .values()
          .removeIf(
              p -> {
                if (p.client == this) {
                  p.done.completeExceptionally(why);
                  return true;
                }
                return false;
              });
      if (clients.remove(this)) {
        if (rkey != null) {
          rkey.close();
        }
        ep.close();
      }
    }

    @Override
    public void close() {
      PeerException why = new PeerException(describe() + ": channel closed");
      failure = why;
      if (!closed) {
        onProgress(() -> closeNow(why));
      }
    }
  }
}
