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
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.openucx.jucx.UcxCallback;
import org.openucx.jucx.UcxException;
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

  private final Object signalLock = new Object();
  private boolean workerClosed; // guarded by signalLock: no task or signal reaches the worker after

  // Owned by the progress thread.
  private final Map<Long, Pending> pending = new HashMap<>(); // fetches waiting for their answer
  private final Map<Long, Pending> getting = new HashMap<>(); // answered fetches doing their gets
  private final Map<Long, Client> late = new java.util.LinkedHashMap<>(); // timed out, unanswered
  private final List<Retired> retired = new ArrayList<>(); // closing endpoints and their keys
  private final Map<Long, Server> serverOfEp = new HashMap<>(); // server-side endpoint -> server
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
        int events = worker.progress();
        reapRetired();
        if (events == 0 && tasks.isEmpty() && !closed) {
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

  /**
   * Runs {@code task} on the progress thread; false (and the task is dropped) once the transport
   * has shut its worker down.
   */
  private boolean onProgress(Runnable task) {
    synchronized (signalLock) {
      if (workerClosed) {
        return false;
      }
      tasks.add(task);
      worker.signal();
      return true;
    }
  }

  /** An endpoint being closed without waiting, and the remote key to free once it is. */
  private record Retired(UcpRequest closing, UcpRemoteKey rkey) {}

  /**
   * Closes {@code ep} without waiting (a blocking close would drive the worker until the peer
   * answered, stalling every other peer): its requests in flight complete with errors. Its remote
   * key is freed once the close is done. On the progress thread.
   */
  private void retire(UcpEndpoint ep, UcpRemoteKey rkey) {
    UcpRequest closing;
    try {
      closing = ep.closeNonBlockingForce();
    } catch (RuntimeException e) {
      LOG.log(Level.FINE, "peer ucx: closing an endpoint", e);
      closing = null;
    }
    retired.add(new Retired(closing, rkey));
  }

  private void reapRetired() {
    for (java.util.Iterator<Retired> it = retired.iterator(); it.hasNext(); ) {
      Retired r = it.next();
      if (r.closing() == null || r.closing().isCompleted()) {
        if (r.rkey() != null) {
          r.rkey().close();
        }
        it.remove();
      }
    }
  }

  private <T> CompletableFuture<T> call(java.util.function.Supplier<T> task) {
    CompletableFuture<T> f = new CompletableFuture<>();
    boolean queued =
        !closed
            && onProgress(
                () -> {
                  try {
                    f.complete(task.get());
                  } catch (RuntimeException e) {
                    f.completeExceptionally(e);
                  }
                });
    if (!queued) {
      f.completeExceptionally(new PeerException("ucx transport closed"));
    }
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
    if (closed || !onProgress(c::open)) {
      c.failure = new PeerException(c.describe() + ": ucx transport closed");
    }
    return c;
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    timers.shutdownNow();
    synchronized (signalLock) {
      if (!workerClosed) {
        worker.signal();
      }
    }
    try {
      // Not returning before the worker is gone: until then a get may still land in a cache.
      progress.join(TimeUnit.SECONDS.toMillis(30));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (progress.isAlive()) {
      LOG.severe("peer ucx: the progress thread is still running 30 s after close");
    }
  }

  /** On the progress thread, last: fails what is in flight and frees UCX objects. */
  private void shutdown() {
    synchronized (signalLock) {
      workerClosed = true; // from here on nothing new is queued
    }
    Runnable t;
    while ((t = tasks.poll()) != null) {
      try {
        t.run();
      } catch (RuntimeException ignored) {
        // closing: nothing left to tell
      }
    }
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
    // Force-closed endpoints complete their gets with errors as the worker progresses.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    try {
      while ((!retired.isEmpty() || !getting.isEmpty()) && System.nanoTime() < deadline) {
        worker.progress();
        reapRetired();
      }
    } catch (Exception x) {
      LOG.log(Level.WARNING, "peer ucx: progressing the worker while closing", x);
    }
    for (Pending p : getting.values()) {
      p.done.completeExceptionally(e); // not reached unless UCX lost a request
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
    private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
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
      UcpEndpoint ep;
      try {
        ep =
            worker.newEndpoint(
                new UcpEndpointParams()
                    .setConnectionRequest(request)
                    .setPeerErrorHandlingMode()
                    .setErrorHandler((e, status, message) -> dropped(e)));
      } catch (UcxException e) {
        // The client left before its connection was accepted (UCX: "Connection reset by remote
        // peer"). Thrown out of this callback it would leave the progress loop and stop the
        // transport for every other peer.
        LOG.log(Level.INFO, "peer ucx: a client left before it was accepted: " + e.getMessage());
        return;
      }
      serverOfEp.put(ep.getNativeId(), this);
    }

    /** A client went away: its slots come back (it will not release them). */
    private void dropped(UcpEndpoint ep) {
      long id = ep.getNativeId();
      serverOfEp.remove(id);
      waiting.removeIf(w -> w.epId() == id); // nobody to answer
      List<int[]> runs = slotsByEp.remove(id);
      if (runs != null) {
        for (int[] run : runs) {
          used.clear(run[0], run[0] + run[1]);
        }
      }
      retire(ep, null);
      drainWaiting();
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
        waiting.add(new Waiting(replyEp.getNativeId(), replyEp, fetch)); // until slots come back
        return;
      }
      used.set(start, start + need);
      int n = fetch.ids().length;
      int[] lengths = new int[n];
      HeldSamples.Copied copied =
          HeldSamples.copyInto(
              held,
              fetch,
              staging.asSlice((long) start * SLOT_BYTES, (long) need * SLOT_BYTES),
              lengths,
              "peer ucx");
      int sent = copied.samples();
      long bytes = copied.bytes();
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
      for (int i = 0; i < n && !waiting.isEmpty(); i++) {
        Waiting w = waiting.poll();
        try {
          fetch(w.ep(), w.fetch()); // queued again when there is still no room
        } catch (RuntimeException e) {
          LOG.log(Level.WARNING, "peer ucx: answering a queued fetch", e);
        }
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

  /** A fetch waiting for staging slots, and the endpoint to answer it on. */
  private record Waiting(long epId, UcpEndpoint ep, PeerWire.Fetch fetch) {}

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
            fetch = PeerWire.readFetch(in);
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
          Server s = serverOfEp.getOrDefault(ep.getNativeId(), servers.getFirst());
          s.fetch(ep, fetch);
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
        Client c = late.remove(id);
        int count = in.getInt();
        in.position(in.position() + 4 * count);
        long remote = in.getLong();
        int slot = in.getInt();
        if (slot >= 0 && c != null && c.ep != null && c.failure == null) {
          sendRelease(c.ep, remote, slot);
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
      if (p != null && !p.done.isDone()) {
        p.done.completeExceptionally(
            e instanceof PeerException pe ? pe : new PeerException("bad answer: " + e, e));
      } else {
        LOG.warning(() -> "peer ucx: bad answer: " + e);
      }
    }
  }

  /** The timeout of fetch {@code id}, on the progress thread. */
  private void timedOut(long id, Client client) {
    Pending p = pending.remove(id);
    if (p != null) { // unanswered: its answer, if it comes, only frees the server's slots
      late.put(id, client);
      if (late.size() > 4096) {
        late.remove(late.keySet().iterator().next());
      }
      p.done.completeExceptionally(PeerException.timedOut(client.describe(), fetchTimeoutMs));
      return;
    }
    Pending g = getting.get(id);
    if (g != null) {
      // Answered, but its gets hang: only closing the endpoint ends them (with errors), and the
      // fetch completes once every get has, so nothing writes its destinations after.
      g.client.closeNow(PeerException.timedOut(client.describe(), fetchTimeoutMs));
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
      CompletableFuture<boolean[]> trivial = PeerWire.trivialAnswer(ids, dsts);
      if (trivial != null) {
        return trivial;
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
      boolean queued =
          !closed
              && onProgress(
                  () -> {
                    PeerException f = failure;
                    if (f != null || ep == null) {
                      done.completeExceptionally(
                          f != null ? f : new PeerException(describe() + ": not connected"));
                      return;
                    }
                    pending.put(id, new Pending(this, ids, dsts, done));
                    send(ep, AM_FETCH, msg, true);
                    try {
                      timers.schedule(
                          () -> onProgress(() -> timedOut(id, this)),
                          fetchTimeoutMs,
                          TimeUnit.MILLISECONDS);
                    } catch (java.util.concurrent.RejectedExecutionException e) {
                      // closing: shutdown() fails what is pending
                    }
                  });
      if (!queued) {
        done.completeExceptionally(new PeerException(describe() + ": ucx transport closed"));
      }
      return done;
    }

    /**
     * Gets each held sample from the server's staging region, then releases the slot run. The fetch
     * completes only once every get issued has ended, whatever the outcome: a failed fetch's
     * destinations are then read into from elsewhere, and a get still running would race that.
     */
    void gets(long id, Pending p, int[] lengths, long remote, int slot, byte[] key)
        throws PeerException {
      boolean[] filled = new boolean[lengths.length];
      if (slot < 0) {
        p.done.complete(filled);
        return;
      }
      for (int i = 0; i < lengths.length; i++) { // every check before the first get
        if (lengths[i] >= 0 && lengths[i] != p.dsts[i].byteSize()) {
          sendRelease(ep, remote, slot);
          throw new PeerException(
              describe()
                  + ": sample "
                  + p.ids[i]
                  + " lengthBytes="
                  + lengths[i]
                  + " expected "
                  + p.dsts[i].byteSize());
        }
      }
      if (rkey == null || !java.util.Arrays.equals(key, rkeyBytes)) {
        if (rkey != null) {
          retired.add(new Retired(null, rkey)); // freed on the next pass, no get uses it by then
        }
        ByteBuffer kb = ByteBuffer.allocateDirect(key.length);
        kb.put(key).flip();
        rkey = ep.unpackRemoteKey(kb);
        rkeyBytes = key;
      }
      Gets g = new Gets(id, p, filled, remote, slot);
      getting.put(id, p);
      long at = remote;
      for (int i = 0; i < lengths.length; i++) {
        if (lengths[i] < 0) {
          continue;
        }
        filled[i] = true;
        MemorySegment dst = p.dsts[i];
        long target;
        if (dst.isNative()) {
          target = dst.address();
        } else { // a heap destination: get into a bounce buffer, copy after
          ByteBuffer bounce = ByteBuffer.allocateDirect(lengths[i]);
          target = UcxUtils.getAddress(bounce);
          g.copies.add(
              () -> MemorySegment.copy(MemorySegment.ofBuffer(bounce), 0, dst, 0, dst.byteSize()));
        }
        g.outstanding++;
        try {
          ep.getNonBlocking(at, rkey, target, lengths[i], g);
        } catch (RuntimeException e) {
          g.outstanding--;
          g.fail(describe() + ": get failed: " + e);
          break;
        }
        at += lengths[i];
      }
      g.issued = true;
      g.maybeDone();
    }

    /** One answered fetch's gets: it completes when the last one has ended. */
    private final class Gets extends UcxCallback {
      final long id;
      final Pending p;
      final boolean[] filled;
      final long remote;
      final int slot;
      final List<Runnable> copies = new ArrayList<>();
      int outstanding;
      boolean issued;
      String failed;

      Gets(long id, Pending p, boolean[] filled, long remote, int slot) {
        this.id = id;
        this.p = p;
        this.filled = filled;
        this.remote = remote;
        this.slot = slot;
      }

      @Override
      public void onSuccess(UcpRequest request) {
        outstanding--;
        maybeDone();
      }

      @Override
      public void onError(int status, String message) {
        outstanding--;
        fail(describe() + ": get failed: " + message + " (status " + status + ")");
        maybeDone();
      }

      void fail(String why) {
        if (failed == null) {
          failed = why;
        }
      }

      void maybeDone() {
        if (!issued || outstanding > 0 || !getting.remove(id, p)) {
          return;
        }
        if (failure == null) {
          sendRelease(ep, remote, slot);
        }
        if (failed != null) {
          p.done.completeExceptionally(new PeerException(failed));
          return;
        }
        try {
          copies.forEach(Runnable::run);
          p.done.complete(filled);
        } catch (RuntimeException e) {
          p.done.completeExceptionally(e);
        }
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
      // Fetches doing their gets end when UCX completes those gets (with errors, once the
      // endpoint is closed): see Gets.
      if (clients.remove(this)) {
        retire(ep, rkey);
        rkey = null;
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
