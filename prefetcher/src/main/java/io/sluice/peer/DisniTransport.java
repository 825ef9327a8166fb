package io.sluice.peer;

import com.ibm.disni.RdmaActiveEndpoint;
import com.ibm.disni.RdmaActiveEndpointGroup;
import com.ibm.disni.RdmaServerEndpoint;
import com.ibm.disni.verbs.IbvMr;
import com.ibm.disni.verbs.IbvPd;
import com.ibm.disni.verbs.IbvRecvWR;
import com.ibm.disni.verbs.IbvSendWR;
import com.ibm.disni.verbs.IbvSge;
import com.ibm.disni.verbs.IbvWC;
import com.ibm.disni.verbs.RdmaCmEvent;
import com.ibm.disni.verbs.RdmaCmId;
import com.ibm.disni.verbs.RdmaConnParam;
import com.ibm.disni.verbs.SVCPostRecv;
import com.ibm.disni.verbs.SVCPostSend;
import com.ibm.disni.verbs.SVCRegMr;
import io.sluice.nativeio.Rdma;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The {@code disni} peer transport: RDMA verbs through DiSNI 2.0, where samples move by one-sided
 * RDMA READ and control messages by SEND/RECV on the same reliable-connected queue pair.
 *
 * <h2>Implementation notes</h2>
 *
 * <pre>
 * client (Channel)                                  server (Server)
 *   FETCH   ---- SEND ------------------------->   lend each sample, copy it into a free slot of
 *                                                  the registered staging memory, close the lease
 *           <--- SEND --------------------------   ANSWER: lengths | address u64 | rkey u32 | slot i32
 *   RDMA READ of the slot into a registered bounce slot (one-sided: no server CPU)
 *   RELEASE ---- SEND ------------------------->   the slot is free again
 *   copy bounce -> the caller's MemorySegments; the fetch completes
 * </pre>
 *
 * <p>The messages are {@link PeerWire}'s; the answer's transport part says where the held samples
 * lie, back to back in request order: {@code address u64 | rkey u32 | slot i32} ({@code slot = -1}
 * and nothing to read when no bytes were staged), and a release names that slot.
 *
 * <p>Flow control is by construction, so a SEND finds a posted receive buffer: a channel has at
 * most {@link #WINDOW} chunks in flight (one bounce slot each), a server posts {@code 2 * WINDOW}
 * receive buffers per connection (a fetch and a release per chunk), and a channel posts {@code
 * WINDOW} for the answers; where a buffer is re-posted late, the sender's RNR retry waits for it. A
 * fetch is cut into chunks of at most {@link #IDS_PER_MESSAGE} samples and {@link #SLOT_BYTES}
 * bytes; a sample longer than a slot is left unfilled (the caller reads it from storage), as is
 * every sample of a fetch that finds all of the server's {@link #SERVER_SLOTS} slots busy.
 *
 * <p>Threads: DiSNI's connection-manager thread and one completion-queue thread per device and
 * endpoint group only hand work to this transport's virtual threads, which decode, lend, copy and
 * post; each server has one platform thread blocked in DiSNI's {@code accept()}. Known DiSNI 2.0
 * limits: IPv4 only, and {@code accept()} waits without a timeout for a connection to establish, so
 * a client that vanishes mid-handshake stalls later accepts until the server closes.
 *
 * <p>Nothing here runs where {@link Rdma#isDisniAvailable()} is false: {@link #create()} fails fast
 * with the cause first, so DiSNI's classes (which load {@code libdisni.so}) stay unloaded.
 */
public final class DisniTransport implements PeerTransport {
  public static final String NAME = "disni";

  /** Bytes of one control message buffer: a fetch of {@link #IDS_PER_MESSAGE} ids fits. */
  static final int CONTROL_BYTES = 16 * 1024;

  /** Samples one FETCH message asks for at most; a longer fetch becomes several chunks. */
  static final int IDS_PER_MESSAGE = 1024;

  /** Bytes of one staging (server) or bounce (client) slot: the most one chunk moves. */
  static final int SLOT_BYTES = 4 << 20;

  /** Staging slots per server: answers staged and not yet released, over all its peers. */
  static final int SERVER_SLOTS = 32;

  /** Chunks in flight per channel, each with its own bounce slot. */
  static final int WINDOW = 8;

  /** The slot of an answer that staged no bytes. */
  static final int NO_SLOT = -1;

  /** {@code address u64 | rkey u32 | slot i32}, after an answer's lengths. */
  static final int STAGED_BYTES = 8 + 4 + 4;

  static final int RELEASE_BYTES = PeerWire.PREAMBLE_BYTES + 4;

  private static final Sizes SERVER_SIZES = new Sizes(2 * WINDOW, 2 * WINDOW, 0);
  private static final Sizes CLIENT_SIZES = new Sizes(WINDOW, 2 * WINDOW, WINDOW);

  // Queue pairs and completion queues. A group's endpoints on one device share one CQ, so it is
  // sized for MAX_CONNECTIONS queue pairs with every work request outstanding: a CQ overrun is
  // fatal to every connection on it.
  private static final int MAX_WR = 64;
  private static final int CQ_SIZE = 16384;
  static final int MAX_CONNECTIONS = CQ_SIZE / (2 * MAX_WR);

  /** RDMA READs a queue pair keeps outstanding (initiator depth, responder resources). */
  private static final byte READS_IN_FLIGHT = 8;

  /** 7: the most transport retries; as RNR retry count, retry without end. */
  private static final byte RETRY_COUNT = 7;

  private static final int CONNECT_TIMEOUT_MS = 2000;

  /** How long DiSNI's threads block per wait, so closing a group takes at most about this. */
  private static final int POLL_MS = 500;

  private static final int BACKLOG = 128;
  private static final long CLOSE_WAIT_MS = 5000;

  private static final Logger LOG = Logger.getLogger(DisniTransport.class.getName());

  private final ExecutorService executor =
      Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("sluice-disni-", 0).factory());
  private final Set<AutoCloseable> open = ConcurrentHashMap.newKeySet();
  private final Object clientsLock = new Object();
  private Clients clients; // guarded by clientsLock; made on the first connect
  private volatile boolean closed;
  private final long fetchTimeoutMs;
  private final java.util.concurrent.ScheduledExecutorService timers =
      Executors.newSingleThreadScheduledExecutor(
          Thread.ofPlatform().daemon().name("sluice-disni-timer").factory());

  private DisniTransport(long fetchTimeoutMs) {
    this.fetchTimeoutMs = fetchTimeoutMs;
  }

  /**
   * A transport, after checking that DiSNI can run here; touches no device until {@link #serve} or
   * {@link #connect}.
   *
   * @throws PeerException naming every missing part ({@link Rdma#disniCause()}, chained) when DiSNI
   *     cannot run here, or when its jar is not on the class path
   */
  public static DisniTransport create() throws PeerException {
    return create(TcpTransport.DEFAULT_FETCH_TIMEOUT_MS);
  }

  /** As {@link #create()}; a fetch unanswered after {@code fetchTimeoutMs} fails. */
  public static DisniTransport create(long fetchTimeoutMs) throws PeerException {
    if (fetchTimeoutMs < 1) {
      throw new IllegalArgumentException("fetchTimeoutMs=" + fetchTimeoutMs + " must be >= 1");
    }
    if (!Rdma.isDisniAvailable()) {
      Throwable cause = Rdma.disniCause();
      throw new PeerException("disni unavailable: " + cause.getMessage(), cause);
    }
    try {
      Class.forName(
          "com.ibm.disni.RdmaActiveEndpointGroup", false, DisniTransport.class.getClassLoader());
    } catch (ClassNotFoundException | LinkageError e) {
      throw new PeerException(
          "disni unavailable: com.ibm.disni:disni:2.0 is not on the class path (an optional"
              + " dependency of sluice-prefetcher)",
          e);
    }
    return new DisniTransport(fetchTimeoutMs);
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public PeerServer serve(InetSocketAddress bind, HeldSamples held) throws IOException {
    ensureOpen();
    Server server = new Server(this, ipv4(bind), held);
    open.add(server);
    if (closed) {
      server.close();
      throw new PeerException("disni transport closed");
    }
    return server;
  }

  @Override
  public PeerChannel connect(InetSocketAddress address) throws IOException {
    ensureOpen();
    if (address.isUnresolved()) {
      throw new PeerException("disni cannot resolve peer=" + address);
    }
    Channel channel = Channel.open(this, clients(), ipv4(address));
    open.add(channel);
    if (closed) {
      channel.close();
      throw new PeerException("disni transport closed");
    }
    return channel;
  }

  @Override
  public void close() {
    closed = true;
    timers.shutdownNow();
    for (AutoCloseable c : open) {
      try {
        c.close();
      } catch (Exception e) {
        LOG.log(Level.WARNING, "disni: closing " + c + " failed", e);
      }
    }
    // Channels release their endpoints on these threads; the group goes once they have.
    executor.shutdown();
    try {
      if (!executor.awaitTermination(CLOSE_WAIT_MS, TimeUnit.MILLISECONDS)) {
        LOG.warning("disni: tasks still running " + CLOSE_WAIT_MS + " ms after close");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    synchronized (clientsLock) {
      if (clients != null) {
        clients.close();
      }
    }
  }

  private void ensureOpen() throws PeerException {
    if (closed) {
      throw new PeerException("disni transport closed");
    }
  }

  private Clients clients() throws IOException {
    synchronized (clientsLock) {
      ensureOpen(); // close() closes the group under this lock: none may come after
      if (clients == null) {
        clients = new Clients();
      }
      return clients;
    }
  }

  /** Runs {@code task} on the transport's threads; false once the transport is closed. */
  boolean execute(Runnable task) {
    try {
      executor.execute(task);
      return true;
    } catch (RejectedExecutionException e) {
      return false;
    }
  }

  void forget(AutoCloseable closed) {
    open.remove(closed);
  }

  /** DiSNI 2.0 speaks {@code sockaddr_in} only; a wildcard becomes {@code 0.0.0.0}. */
  static InetSocketAddress ipv4(InetSocketAddress address) throws PeerException {
    InetAddress ip = address.getAddress();
    if (ip != null && ip.isAnyLocalAddress() && !(ip instanceof Inet4Address)) {
      return new InetSocketAddress("0.0.0.0", address.getPort());
    }
    if (!(ip instanceof Inet4Address)) {
      throw new PeerException("disni speaks IPv4 only (DiSNI 2.0): address=" + address);
    }
    return address;
  }

  // ---- wire: the transport part of an answer, and the release ---------------------------------

  /** Where an answer's samples lie in the server's registered memory. */
  record Staged(long address, int rkey, int slot) {}

  static void putStaged(ByteBuffer out, Staged staged) {
    out.order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(staged.address()).putInt(staged.rkey()).putInt(staged.slot());
  }

  /** Decodes the transport part after {@link PeerWire#getAnswerLengths}. */
  static Staged getStaged(ByteBuffer in) throws PeerException {
    try {
      Staged staged = new Staged(in.getLong(), in.getInt(), in.getInt());
      if (staged.slot() < NO_SLOT) {
        throw new PeerException("slot=" + staged.slot() + " must be >= " + NO_SLOT);
      }
      return staged;
    } catch (BufferUnderflowException e) {
      throw new PeerException("answer's staging part truncated at byte " + in.position(), e);
    }
  }

  static void putRelease(ByteBuffer out, long requestId, int slot) {
    out.order(ByteOrder.LITTLE_ENDIAN);
    out.putInt(PeerWire.MAGIC).put(PeerWire.RELEASE).putLong(requestId).putInt(slot);
  }

  /**
   * How a fetch is cut into chunks: positions in request order, each chunk at most {@code
   * idsPerMessage} samples and {@code slotBytes} bytes. A sample longer than {@code slotBytes} is
   * in no chunk (left unfilled).
   */
  static List<int[]> chunks(long[] lengths, int idsPerMessage, long slotBytes) {
    List<int[]> chunks = new ArrayList<>();
    int[] current = new int[Math.min(idsPerMessage, lengths.length)];
    int count = 0;
    long bytes = 0;
    for (int i = 0; i < lengths.length; i++) {
      if (lengths[i] > slotBytes) {
        continue;
      }
      if (count == idsPerMessage || bytes + lengths[i] > slotBytes) {
        chunks.add(Arrays.copyOf(current, count));
        count = 0;
        bytes = 0;
      }
      current[count++] = i;
      bytes += lengths[i];
    }
    if (count > 0) {
      chunks.add(Arrays.copyOf(current, count));
    }
    return chunks;
  }

  // ---- endpoints ------------------------------------------------------------------------------

  /** Registered buffers per endpoint: receive and send buffers, and bounce slots (clients). */
  record Sizes(int receives, int sends, int bounceSlots) {}

  /** What an endpoint reports. Called on DiSNI's threads: implementations hand work off. */
  interface Listener {
    /** A control message arrived; {@code message} is a copy, its receive buffer posted again. */
    void onMessage(Endpoint from, ByteBuffer message);

    /** The RDMA READ into {@code bounceSlot} completed. */
    void onReadDone(Endpoint from, int bounceSlot);

    /** The queue pair failed or the peer disconnected; reported once. */
    void onBroken(Endpoint from, PeerException cause);
  }

  /**
   * One reliable-connected queue pair with its registered buffers. DiSNI's CQ thread calls {@link
   * #dispatchCqEvent}; {@link #send} and {@link #read} are called from the transport's threads.
   */
  static final class Endpoint extends RdmaActiveEndpoint {
    private static final int RECV = 1;
    private static final int SEND = 2;
    private static final int READ = 3;
    private static final int WC_SUCCESS = 0; // IBV_WC_SUCCESS

    private final Sizes sizes;
    private final Arena arena = Arena.ofShared();
    private final ByteBuffer receiveArea;
    private final ByteBuffer sendArea;
    private final ByteBuffer bounceArea;
    private final LinkedBlockingQueue<Integer> freeSends = new LinkedBlockingQueue<>();
    // DiSNI's post calls build native structures per call; one poster at a time per queue pair.
    private final ReentrantLock posting = new ReentrantLock();
    private final AtomicBoolean broken = new AtomicBoolean();
    private final AtomicBoolean released = new AtomicBoolean();
    private volatile Listener listener;
    private volatile String peer = "?";
    // Set in init() on the connecting (or accepting) thread, read on DiSNI's CQ thread and ours.
    private volatile IbvMr receiveMr;
    private volatile IbvMr sendMr;
    private volatile IbvMr bounceMr;

    Endpoint(RdmaActiveEndpointGroup<Endpoint> group, RdmaCmId id, boolean serverSide, Sizes sizes)
        throws IOException {
      super(group, id, serverSide);
      this.sizes = sizes;
      this.receiveArea = allocate((long) sizes.receives() * CONTROL_BYTES);
      this.sendArea = allocate((long) sizes.sends() * CONTROL_BYTES);
      this.bounceArea =
          sizes.bounceSlots() == 0 ? null : allocate((long) sizes.bounceSlots() * SLOT_BYTES);
      for (int i = 0; i < sizes.sends(); i++) {
        freeSends.add(i);
      }
    }

    private ByteBuffer allocate(long bytes) {
      return arena.allocate(bytes, 4096).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Sets who hears of this endpoint; before it connects. */
    void attach(Listener listener, String peer) {
      this.listener = listener;
      this.peer = peer;
    }

    String peer() {
      return peer;
    }

    /** Registers the buffers and posts every receive, before the connection is established. */
    @Override
    protected synchronized void init() throws IOException {
      super.init();
      receiveMr = register(receiveArea);
      sendMr = register(sendArea);
      if (bounceArea != null) {
        bounceMr = register(bounceArea);
      }
      for (int i = 0; i < sizes.receives(); i++) {
        postReceive(i);
      }
    }

    /** Registers {@code buffer} in this endpoint's protection domain. */
    IbvMr register(ByteBuffer buffer) throws IOException {
      SVCRegMr call = registerMemory(buffer);
      try {
        return call.execute().getMr();
      } finally {
        call.free();
      }
    }

    private void postReceive(int index) throws IOException {
      IbvRecvWR wr = new IbvRecvWR();
      wr.setWr_id(wrId(RECV, index));
      wr.setSg_list(sge(receiveMr, (long) index * CONTROL_BYTES, CONTROL_BYTES));
      posting.lock();
      try {
        SVCPostRecv call = postRecv(List.of(wr));
        try {
          call.execute();
        } finally {
          call.free();
        }
      } finally {
        posting.unlock();
      }
    }

    /**
     * Writes one control message with {@code writer} into a free registered send buffer and posts
     * it, waiting for a buffer if all are in flight.
     */
    void send(Consumer<ByteBuffer> writer) throws PeerException {
      int index = takeSendBuffer();
      ByteBuffer buffer =
          sendArea.slice(index * CONTROL_BYTES, CONTROL_BYTES).order(ByteOrder.LITTLE_ENDIAN);
      try {
        writer.accept(buffer);
      } catch (RuntimeException e) {
        freeSends.add(index);
        throw new PeerException("disni peer=" + peer + " message does not encode: " + e, e);
      }
      IbvSendWR wr = new IbvSendWR();
      wr.setWr_id(wrId(SEND, index));
      wr.setSg_list(sge(sendMr, (long) index * CONTROL_BYTES, buffer.position()));
      wr.setOpcode(IbvSendWR.IBV_WR_SEND);
      wr.setSend_flags(IbvSendWR.IBV_SEND_SIGNALED);
      try {
        post(wr);
      } catch (PeerException e) {
        freeSends.add(index);
        throw e;
      }
    }

    /** Reads {@code lengthBytes} at the peer's {@code address} into bounce slot {@code slot}. */
    void read(long address, int rkey, int slot, int lengthBytes) throws PeerException {
      IbvSendWR wr = new IbvSendWR();
      wr.setWr_id(wrId(READ, slot));
      wr.setSg_list(sge(bounceMr, (long) slot * SLOT_BYTES, lengthBytes));
      wr.setOpcode(IbvSendWR.IBV_WR_RDMA_READ);
      wr.setSend_flags(IbvSendWR.IBV_SEND_SIGNALED);
      wr.getRdma().setRemote_addr(address);
      wr.getRdma().setRkey(rkey);
      post(wr);
    }

    /** Bounce slot {@code slot}'s first {@code lengthBytes}, to copy out of after a READ. */
    MemorySegment bounce(int slot, long lengthBytes) {
      return MemorySegment.ofBuffer(bounceArea).asSlice((long) slot * SLOT_BYTES, lengthBytes);
    }

    private void post(IbvSendWR wr) throws PeerException {
      if (broken.get()) {
        throw new PeerException("disni peer=" + peer + " connection broken");
      }
      posting.lock();
      try {
        SVCPostSend call = postSend(List.of(wr));
        try {
          call.execute();
        } finally {
          call.free();
        }
      } catch (IOException e) {
        throw new PeerException("disni peer=" + peer + " post failed: " + e.getMessage(), e);
      } finally {
        posting.unlock();
      }
    }

    private int takeSendBuffer() throws PeerException {
      try {
        while (true) {
          Integer index = freeSends.poll(POLL_MS, TimeUnit.MILLISECONDS);
          if (index != null) {
            return index;
          }
          if (broken.get() || released.get()) {
            throw new PeerException("disni peer=" + peer + " connection broken");
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new PeerException("disni peer=" + peer + " interrupted waiting to send", e);
      }
    }

    @Override
    public void dispatchCqEvent(IbvWC wc) {
      // DiSNI reuses wc for the next completion: take what is needed now.
      long wrId = wc.getWr_id();
      int status = wc.getStatus();
      int byteLength = wc.getByte_len();
      int vendorError = wc.getVendor_err();
      int kind = (int) (wrId >>> 32);
      int index = (int) wrId;
      if (status != WC_SUCCESS) {
        // The queue pair is in error now; the flushed requests that follow change nothing.
        fail(
            new PeerException(
                "disni peer="
                    + peer
                    + " "
                    + kindName(kind)
                    + " failed: status="
                    + statusName(status)
                    + " vendor_err="
                    + vendorError));
        return;
      }
      Listener heard = listener;
      try {
        switch (kind) {
          case RECV -> {
            ByteBuffer message = ByteBuffer.allocate(byteLength).order(ByteOrder.LITTLE_ENDIAN);
            message.put(receiveArea.slice(index * CONTROL_BYTES, byteLength)).flip();
            postReceive(index);
            heard.onMessage(this, message);
          }
          case SEND -> freeSends.add(index);
          case READ -> heard.onReadDone(this, index);
          default -> throw new IllegalStateException("wr_id=0x" + Long.toHexString(wrId));
        }
      } catch (IOException | RuntimeException e) {
        fail(new PeerException("disni peer=" + peer + " completion failed: " + e, e));
      }
    }

    @Override
    public synchronized void dispatchCmEvent(RdmaCmEvent event) throws IOException {
      super.dispatchCmEvent(event);
      if (event.getEvent() == RdmaCmEvent.EventType.RDMA_CM_EVENT_DISCONNECTED.ordinal()) {
        fail(new PeerException("disni peer=" + peer + " disconnected"));
      }
    }

    void fail(PeerException cause) {
      Listener heard = listener;
      if (broken.compareAndSet(false, true) && heard != null) {
        heard.onBroken(this, cause);
      }
    }

    /**
     * Disconnects, destroys the queue pair, then deregisters and frees the buffers. Memory whose
     * deregistration failed is kept: the NIC might still write to it. Blocks up to a second.
     */
    void release() {
      if (!released.compareAndSet(false, true)) {
        return;
      }
      broken.set(true);
      try {
        close();
      } catch (IOException | RuntimeException e) {
        // DiSNI 2.0 throws NullPointerException closing an endpoint that never connected
        LOG.log(Level.FINE, "disni peer=" + peer + " close failed", e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      boolean deregistered = deregister(receiveMr) & deregister(sendMr) & deregister(bounceMr);
      if (deregistered) {
        arena.close();
      }
    }

    private boolean deregister(IbvMr mr) {
      if (mr == null) {
        return true;
      }
      try {
        deregisterMemory(mr);
        return true;
      } catch (IOException | RuntimeException e) {
        LOG.log(Level.WARNING, "disni peer=" + peer + " deregistering memory failed", e);
        return false;
      }
    }

    private static LinkedList<IbvSge> sge(IbvMr mr, long offset, int lengthBytes) {
      IbvSge sge = new IbvSge();
      sge.setAddr(mr.getAddr() + offset);
      sge.setLength(lengthBytes);
      sge.setLkey(mr.getLkey());
      LinkedList<IbvSge> list = new LinkedList<>();
      list.add(sge);
      return list;
    }

    private static long wrId(int kind, int index) {
      return ((long) kind << 32) | index;
    }

    private static String kindName(int kind) {
      return switch (kind) {
        case RECV -> "receive";
        case SEND -> "send";
        case READ -> "rdma read";
        default -> "work request kind=" + kind;
      };
    }

    private static String statusName(int status) {
      try {
        return IbvWC.IbvWcStatus.valueOf(status) + " (" + status + ")";
      } catch (RuntimeException e) {
        return String.valueOf(status);
      }
    }
  }

  /**
   * DiSNI endpoint groups: endpoints of a group share a CM thread, and a CQ and its thread per
   * device. In a class of its own so that {@code DisniTransport} itself loads (and {@link
   * #create()} can say why not) without DiSNI's jar.
   */
  static final class Groups {
    private Groups() {}

    /** A group whose endpoints start with {@code listener} (null: attached before connecting). */
    static RdmaActiveEndpointGroup<Endpoint> open(Sizes sizes, Listener listener)
        throws IOException {
      RdmaActiveEndpointGroup<Endpoint> group =
          new RdmaActiveEndpointGroup<>(POLL_MS, false, MAX_WR, 1, CQ_SIZE);
      RdmaConnParam params = group.getConnParam();
      params.setInitiator_depth(READS_IN_FLIGHT);
      params.setResponder_resources(READS_IN_FLIGHT);
      params.setRetry_count(RETRY_COUNT);
      // A SEND that meets no posted receive waits instead of breaking the queue pair.
      params.setRnr_retry_count(RETRY_COUNT);
      group.init(
          (id, serverSide) -> {
            Endpoint endpoint = new Endpoint(group, id, serverSide, sizes);
            if (listener != null) {
              // Accepted endpoints can receive before accept() returns: listen from the start.
              endpoint.attach(listener, "?");
            }
            return endpoint;
          });
      return group;
    }

    static void close(RdmaActiveEndpointGroup<Endpoint> group) {
      try {
        group.close();
      } catch (IOException | RuntimeException e) {
        LOG.log(Level.WARNING, "disni: closing an endpoint group failed", e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** The endpoint group every channel of the transport connects from. */
  static final class Clients {
    final RdmaActiveEndpointGroup<Endpoint> group;
    final AtomicInteger channels = new AtomicInteger();

    Clients() throws IOException {
      group = Groups.open(CLIENT_SIZES, null);
    }

    void close() {
      Groups.close(group);
    }
  }

  // ---- server ---------------------------------------------------------------------------------

  /**
   * The server's registered staging memory: {@link #SERVER_SLOTS} slots of {@link #SLOT_BYTES},
   * each holding one answer's samples from the answer until its release or its peer's disconnect.
   * Registered lazily in each protection domain (device) a peer connects through.
   */
  static final class Staging {
    private final Arena arena = Arena.ofShared();
    private final ByteBuffer buffer;
    private final MemorySegment memory;
    private final Map<IbvPd, IbvMr> regions = new IdentityHashMap<>(); // guarded by this
    private final Endpoint[] owners = new Endpoint[SERVER_SLOTS]; // guarded by this
    private final long[] requestIds = new long[SERVER_SLOTS]; // guarded by this

    Staging() {
      memory = arena.allocate((long) SERVER_SLOTS * SLOT_BYTES, 4096);
      buffer = memory.asByteBuffer();
    }

    /** A free slot, now {@code owner}'s for {@code requestId}, or {@link #NO_SLOT}. */
    synchronized int acquire(Endpoint owner, long requestId) {
      for (int slot = 0; slot < owners.length; slot++) {
        if (owners[slot] == null) {
          owners[slot] = owner;
          requestIds[slot] = requestId;
          return slot;
        }
      }
      return NO_SLOT;
    }

    /** Frees {@code slot} if {@code owner} holds it for {@code requestId}; false otherwise. */
    synchronized boolean release(Endpoint owner, long requestId, int slot) {
      if (slot < 0 || slot >= owners.length) {
        return false;
      }
      if (owners[slot] != owner || requestIds[slot] != requestId) {
        return false;
      }
      owners[slot] = null;
      return true;
    }

    synchronized void releaseAll(Endpoint owner) {
      for (int slot = 0; slot < owners.length; slot++) {
        if (owners[slot] == owner) {
          owners[slot] = null;
        }
      }
    }

    MemorySegment slot(int slot) {
      return memory.asSlice((long) slot * SLOT_BYTES, SLOT_BYTES);
    }

    /** The staging memory's registration in {@code endpoint}'s protection domain. */
    synchronized IbvMr region(Endpoint endpoint) throws IOException {
      IbvPd pd = endpoint.getPd();
      IbvMr mr = regions.get(pd);
      if (mr == null) {
        mr = endpoint.register(buffer);
        regions.put(pd, mr);
      }
      return mr;
    }

    /** After every queue pair that could read it is destroyed. */
    synchronized void close() {
      boolean deregistered = true;
      for (IbvMr mr : regions.values()) {
        try {
          mr.deregMr().execute().free();
        } catch (IOException | RuntimeException e) {
          deregistered = false;
          LOG.log(Level.WARNING, "disni: deregistering staging memory failed", e);
        }
      }
      regions.clear();
      if (deregistered) {
        arena.close();
      }
    }
  }

  /** A listening endpoint answering fetches from {@link HeldSamples}. */
  static final class Server implements PeerServer, Listener {
    private final DisniTransport transport;
    private final HeldSamples held;
    private final RdmaActiveEndpointGroup<Endpoint> group;
    private final RdmaServerEndpoint<Endpoint> serverEndpoint;
    private final InetSocketAddress address;
    private final Staging staging;
    private final Set<Endpoint> connections = ConcurrentHashMap.newKeySet();
    private final Thread acceptor;
    private final LongAdder fetches = new LongAdder();
    private final LongAdder samplesSent = new LongAdder();
    private final LongAdder samplesMissed = new LongAdder();
    private final LongAdder bytesSent = new LongAdder();
    private final LongAdder badRequests = new LongAdder();
    private final AtomicBoolean closing = new AtomicBoolean();
    private volatile boolean closed;

    // The group's endpoints get this server as listener once bound, before the constructor ends:
    // what handle() uses (transport, held, staging, the counters) is set by then.
    Server(DisniTransport transport, InetSocketAddress bind, HeldSamples held) throws IOException {
      this.transport = transport;
      this.held = held;
      this.staging = new Staging();
      RdmaActiveEndpointGroup<Endpoint> made = null;
      RdmaServerEndpoint<Endpoint> bound;
      InetSocketAddress local;
      try {
        made = Groups.open(SERVER_SIZES, this);
        bound = made.createServerEndpoint();
        bound.bind(bind, BACKLOG);
        local = (InetSocketAddress) bound.getSrcAddr();
      } catch (Exception e) {
        if (made != null) {
          Groups.close(made);
        }
        staging.close();
        throw new PeerException("disni bind address=" + bind + " failed: " + e.getMessage(), e);
      }
      this.group = made;
      this.serverEndpoint = bound;
      this.address = local;
      this.acceptor =
          Thread.ofPlatform()
              .daemon()
              .name("sluice-disni-accept-" + local.getPort())
              .start(this::acceptLoop);
    }

    private void acceptLoop() {
      while (!closed) {
        Endpoint endpoint;
        try {
          endpoint = serverEndpoint.accept(); // null when woken without a request
        } catch (IOException e) {
          if (closed) {
            return;
          }
          LOG.log(Level.WARNING, "disni server=" + address + " accept failed", e);
          pause();
          continue;
        }
        if (endpoint == null) {
          continue;
        }
        String peer = describe(endpoint);
        endpoint.attach(this, peer); // listening since it was made (Groups.open); now named
        if (closed || connections.size() >= MAX_CONNECTIONS) {
          LOG.warning(
              "disni server="
                  + address
                  + " refused peer="
                  + peer
                  + ": connections="
                  + connections.size()
                  + " max="
                  + MAX_CONNECTIONS);
          transport.execute(endpoint::release);
          continue;
        }
        connections.add(endpoint);
      }
    }

    private static void pause() {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    private static String describe(Endpoint endpoint) {
      try {
        return String.valueOf(endpoint.getDstAddr());
      } catch (IOException | RuntimeException e) {
        return "?";
      }
    }

    @Override
    public void onMessage(Endpoint from, ByteBuffer message) {
      transport.execute(() -> handle(from, message));
    }

    @Override
    public void onReadDone(Endpoint from, int bounceSlot) {
      // servers post no reads
    }

    @Override
    public void onBroken(Endpoint from, PeerException cause) {
      LOG.log(Level.FINE, "disni server=" + address + " lost a peer", cause);
      transport.execute(
          () -> {
            connections.remove(from);
            staging.releaseAll(from);
            from.release();
          });
    }

    private void handle(Endpoint from, ByteBuffer message) {
      try {
        byte kind = PeerWire.kind(message);
        switch (kind) {
          case PeerWire.FETCH -> answer(from, PeerWire.getFetch(message));
          case PeerWire.RELEASE -> release(from, message);
          default -> throw new PeerException("kind=" + kind + " is not a fetch or a release");
        }
      } catch (PeerException e) {
        // A bad request is counted and answered; the connection stays.
        badRequests.increment();
        long requestId =
            message.limit() >= PeerWire.PREAMBLE_BYTES
                ? message.getLong(PeerWire.PREAMBLE_BYTES - 8)
                : 0;
        LOG.log(Level.FINE, "disni server=" + address + " bad request from " + from.peer(), e);
        sendError(from, requestId, e.getMessage());
      }
    }

    private void answer(Endpoint from, PeerWire.Fetch fetch) {
      int count = fetch.ids().length;
      int[] lengths = new int[count];
      Arrays.fill(lengths, -1);
      int slot = staging.acquire(from, fetch.requestId());
      long staged = 0;
      int sent = 0;
      Staged where = new Staged(0, 0, NO_SLOT);
      try {
        if (slot != NO_SLOT) {
          // The bytes are copied, so each lease ends at its copy rather than at the release.
          HeldSamples.Copied copied =
              HeldSamples.copyInto(held, fetch, staging.slot(slot), lengths, "peer disni");
          staged = copied.bytes();
          sent = copied.samples();
          if (staged == 0) {
            staging.release(from, fetch.requestId(), slot);
          } else {
            IbvMr region = staging.region(from);
            where = new Staged(region.getAddr() + (long) slot * SLOT_BYTES, region.getRkey(), slot);
          }
        }
      } catch (IOException | RuntimeException e) {
        staging.release(from, fetch.requestId(), slot);
        LOG.log(Level.WARNING, "disni server=" + address + " staging failed", e);
        sendError(from, fetch.requestId(), "staging failed: " + e);
        return;
      }
      // Counted before the answer goes: the asker may look at the stats once it has it.
      fetches.increment();
      samplesSent.add(sent);
      samplesMissed.add(count - sent);
      bytesSent.add(staged);
      Staged answered = where;
      try {
        from.send(
            out -> {
              PeerWire.putAnswer(out, fetch.requestId(), lengths);
              putStaged(out, answered);
            });
      } catch (PeerException e) {
        staging.release(from, fetch.requestId(), slot);
        from.fail(e);
      }
    }

    private void release(Endpoint from, ByteBuffer message) throws PeerException {
      long requestId;
      int slot;
      try {
        requestId = message.getLong();
        slot = message.getInt();
      } catch (BufferUnderflowException e) {
        throw new PeerException("release truncated at byte " + message.position(), e);
      }
      if (!staging.release(from, requestId, slot)) {
        throw new PeerException(
            "release of slot=" + slot + " request=" + requestId + " that this peer does not hold");
      }
    }

    private void sendError(Endpoint to, long requestId, String text) {
      ByteBuffer error = PeerWire.error(requestId, text);
      try {
        to.send(out -> out.put(error));
      } catch (PeerException e) {
        to.fail(e);
      }
    }

    @Override
    public InetSocketAddress address() {
      return address;
    }

    @Override
    public PeerServerStats stats() {
      return new PeerServerStats(
          fetches.sum(),
          samplesSent.sum(),
          samplesMissed.sum(),
          bytesSent.sum(),
          badRequests.sum());
    }

    @Override
    public void close() {
      if (!closing.compareAndSet(false, true)) {
        return;
      }
      closed = true;
      try {
        serverEndpoint.close();
      } catch (IOException | RuntimeException e) {
        LOG.log(Level.FINE, "disni server=" + address + " closing the listener failed", e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      acceptor.interrupt(); // DiSNI's accept() waits without a timeout
      try {
        acceptor.join(CLOSE_WAIT_MS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      for (Endpoint endpoint : connections) {
        endpoint.release();
      }
      connections.clear();
      staging.close();
      Groups.close(group);
      transport.forget(this);
    }

    @Override
    public String toString() {
      return "disni server=" + address;
    }
  }

  // ---- client ---------------------------------------------------------------------------------

  /** One caller's fetch: completes when every chunk has, so its {@code dsts} are free again. */
  private static final class Fetch {
    final MemorySegment[] dsts;
    final boolean[] filled;
    final CompletableFuture<boolean[]> result = new CompletableFuture<>();
    private final AtomicInteger remaining;
    private final AtomicReference<PeerException> failure = new AtomicReference<>();

    Fetch(MemorySegment[] dsts, int chunks) {
      this.dsts = dsts;
      this.filled = new boolean[dsts.length];
      this.remaining = new AtomicInteger(chunks);
      if (chunks == 0) {
        result.complete(filled);
      }
    }

    void chunkDone(PeerException failed) {
      if (failed != null) {
        failure.compareAndSet(null, failed);
      }
      if (remaining.decrementAndGet() == 0) {
        PeerException first = failure.get();
        if (first == null) {
          result.complete(filled);
        } else {
          result.completeExceptionally(first);
        }
      }
    }
  }

  /** Up to {@link #IDS_PER_MESSAGE} samples of a fetch, moved through one bounce slot. */
  private static final class Chunk {
    final long requestId;
    final String dataset;
    final int[] positions;
    final long[] ids;
    final int[] lengths;
    final Fetch fetch;
    private final AtomicBoolean claimed = new AtomicBoolean();
    volatile boolean timedOut; // claimed by the timeout: its late answer only frees its slots
    int bounceSlot = -1; // set when started, under the channel's lock
    int[] answered; // the answer's lengths, before the READ is posted
    int serverSlot = NO_SLOT;

    Chunk(long requestId, String dataset, int[] positions, long[] ids, Fetch fetch) {
      this.requestId = requestId;
      this.dataset = dataset;
      this.positions = positions;
      this.fetch = fetch;
      this.ids = new long[positions.length];
      this.lengths = new int[positions.length];
      for (int i = 0; i < positions.length; i++) {
        this.ids[i] = ids[positions[i]];
        this.lengths[i] = (int) fetch.dsts[positions[i]].byteSize();
      }
    }

    /** Whoever claims a chunk first (its copier, or a failure) completes it, exactly once. */
    boolean claim() {
      return claimed.compareAndSet(false, true);
    }
  }

  /** A connection to one peer's server. Fetches are queued until it connects. */
  static final class Channel implements PeerChannel, Listener {
    private final DisniTransport transport;
    private final Clients clients;
    private final InetSocketAddress address;
    private final Endpoint endpoint;
    private final AtomicLong requestIds = new AtomicLong();
    private final Object lock = new Object();
    private final ArrayDeque<Chunk> waiting = new ArrayDeque<>(); // guarded by lock
    private final ArrayDeque<Integer> freeBounce = new ArrayDeque<>(); // guarded by lock
    private final ConcurrentHashMap<Long, Chunk> inFlight = new ConcurrentHashMap<>();
    private final AtomicReferenceArray<Chunk> reading = new AtomicReferenceArray<>(WINDOW);
    private boolean connected; // guarded by lock
    private PeerException broken; // guarded by lock

    private Channel(
        DisniTransport transport, Clients clients, InetSocketAddress address, Endpoint endpoint) {
      this.transport = transport;
      this.clients = clients;
      this.address = address;
      this.endpoint = endpoint;
      for (int slot = 0; slot < WINDOW; slot++) {
        freeBounce.add(slot);
      }
    }

    static Channel open(DisniTransport transport, Clients clients, InetSocketAddress address)
        throws IOException {
      if (clients.channels.incrementAndGet() > MAX_CONNECTIONS) {
        clients.channels.decrementAndGet();
        throw new PeerException("disni peer=" + address + ": channels over max=" + MAX_CONNECTIONS);
      }
      Endpoint endpoint;
      try {
        endpoint = clients.group.createEndpoint();
      } catch (IOException | RuntimeException e) {
        clients.channels.decrementAndGet();
        throw new PeerException("disni peer=" + address + ": " + e.getMessage(), e);
      }
      Channel channel = new Channel(transport, clients, address, endpoint);
      endpoint.attach(channel, address.toString());
      if (!transport.execute(channel::connect)) {
        channel.close();
        throw new PeerException("disni transport closed");
      }
      return channel;
    }

    private void connect() {
      try {
        endpoint.connect(address, CONNECT_TIMEOUT_MS);
      } catch (Exception e) {
        if (e instanceof InterruptedException) {
          Thread.currentThread().interrupt();
        }
        fail(new PeerException(describe() + ": connect failed: " + e.getMessage(), e));
        return;
      }
      synchronized (lock) {
        connected = true;
      }
      pump();
    }

    @Override
    public CompletableFuture<boolean[]> fetch(String dataset, long[] ids, MemorySegment[] dsts) {
      if (ids.length != dsts.length) {
        return CompletableFuture.failedFuture(
            new IllegalArgumentException(
                "ids=" + ids.length + " and dsts=" + dsts.length + " must be as many"));
      }
      if (dataset.getBytes(StandardCharsets.UTF_8).length > PeerWire.MAX_DATASET_BYTES) {
        return CompletableFuture.failedFuture(
            new IllegalArgumentException(
                "dataset name must be <= " + PeerWire.MAX_DATASET_BYTES + " UTF-8 bytes"));
      }
      long[] lengths = new long[dsts.length];
      for (int i = 0; i < dsts.length; i++) {
        lengths[i] = dsts[i].byteSize();
      }
      List<int[]> plan = chunks(lengths, IDS_PER_MESSAGE, SLOT_BYTES);
      Fetch fetch = new Fetch(dsts, plan.size());
      synchronized (lock) {
        if (broken != null) {
          return CompletableFuture.failedFuture(new PeerException(broken.getMessage(), broken));
        }
        for (int[] positions : plan) {
          waiting.add(new Chunk(requestIds.incrementAndGet(), dataset, positions, ids, fetch));
        }
      }
      if (!plan.isEmpty() && !transport.execute(this::pump)) {
        fail(new PeerException(describe() + ": transport closed"));
      }
      if (!plan.isEmpty()) {
        long first = requestIds.get() - plan.size() + 1;
        try {
          transport.timers.schedule(
              () -> transport.execute(() -> timeOut(fetch, first, plan.size())),
              transport.fetchTimeoutMs,
              TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException e) {
          // closing: fail() ends the fetch
        }
      }
      return fetch.result;
    }

    /** Starts waiting chunks while bounce slots are free. */
    private void pump() {
      List<Chunk> started = new ArrayList<>();
      synchronized (lock) {
        while (connected && broken == null && !waiting.isEmpty() && !freeBounce.isEmpty()) {
          Chunk chunk = waiting.poll();
          chunk.bounceSlot = freeBounce.poll();
          inFlight.put(chunk.requestId, chunk);
          started.add(chunk);
        }
      }
      for (Chunk chunk : started) {
        try {
          endpoint.send(
              out ->
                  PeerWire.putFetch(out, chunk.requestId, chunk.dataset, chunk.ids, chunk.lengths));
        } catch (PeerException e) {
          fail(e);
          return;
        }
      }
    }

    @Override
    public void onMessage(Endpoint from, ByteBuffer message) {
      transport.execute(() -> handle(message));
    }

    @Override
    public void onReadDone(Endpoint from, int bounceSlot) {
      transport.execute(() -> copyOut(bounceSlot));
    }

    @Override
    public void onBroken(Endpoint from, PeerException cause) {
      fail(cause);
    }

    private void handle(ByteBuffer message) {
      try {
        byte kind = PeerWire.kind(message);
        long requestId = message.getLong();
        Chunk chunk = inFlight.get(requestId);
        if (chunk == null) {
          return; // failed already, with the whole channel
        }
        switch (kind) {
          case PeerWire.ANSWER -> answered(chunk, message);
          case PeerWire.ERROR ->
              finish(
                  chunk,
                  new PeerException(
                      describe()
                          + " answered request="
                          + requestId
                          + " with an error: "
                          + PeerWire.getError(message)));
          default -> throw new PeerException("kind=" + kind + " is not an answer");
        }
      } catch (PeerException | BufferUnderflowException e) {
        // An answer that does not decode: this path is not to be trusted any more.
        fail(new PeerException(describe() + ": bad answer: " + e.getMessage(), e));
      }
    }

    private void answered(Chunk chunk, ByteBuffer message) throws PeerException {
      int[] lengths = PeerWire.getAnswerLengths(message, chunk.ids.length);
      Staged staged = getStaged(message);
      long total = 0;
      for (int i = 0; i < lengths.length; i++) {
        if (lengths[i] >= 0 && lengths[i] != chunk.lengths[i]) {
          throw new PeerException(
              "lengthBytes="
                  + lengths[i]
                  + " of sample "
                  + chunk.ids[i]
                  + " differs from the asked "
                  + chunk.lengths[i]);
        }
        total += Math.max(lengths[i], 0);
      }
      if (total > SLOT_BYTES || (total > 0) != (staged.slot() != NO_SLOT)) {
        throw new PeerException("total=" + total + " bytes do not fit slot=" + staged.slot());
      }
      chunk.answered = lengths;
      chunk.serverSlot = staged.slot();
      if (total == 0) {
        copyOut(chunk); // zero-length samples only, if any: nothing to read
        return;
      }
      reading.set(chunk.bounceSlot, chunk);
      endpoint.read(staged.address(), staged.rkey(), chunk.bounceSlot, (int) total);
    }

    private void copyOut(int bounceSlot) {
      Chunk chunk = reading.getAndSet(bounceSlot, null);
      if (chunk != null) {
        copyOut(chunk);
      }
    }

    /** Releases the server's slot, then copies the bounce slot into the caller's segments. */
    private void copyOut(Chunk chunk) {
      if (!chunk.claim()) {
        retire(chunk); // timed out (or failed with the channel) meanwhile
        return;
      }
      PeerException failed = null;
      try {
        if (chunk.serverSlot != NO_SLOT) {
          endpoint.send(out -> putRelease(out, chunk.requestId, chunk.serverSlot));
        }
        long offset = 0;
        for (int i = 0; i < chunk.answered.length; i++) {
          int length = chunk.answered[i];
          if (length < 0) {
            continue;
          }
          int position = chunk.positions[i];
          if (length > 0) {
            MemorySegment.copy(
                endpoint.bounce(chunk.bounceSlot, offset + length),
                offset,
                chunk.fetch.dsts[position],
                0,
                length);
          }
          chunk.fetch.filled[position] = true;
          offset += length;
        }
      } catch (PeerException e) {
        failed = e;
        fail(e);
      } catch (RuntimeException e) {
        // e.g. the channel closed under the copy
        failed = new PeerException(describe() + ": copying out failed: " + e, e);
      }
      inFlight.remove(chunk.requestId);
      synchronized (lock) {
        freeBounce.add(chunk.bounceSlot);
      }
      chunk.fetch.chunkDone(failed);
      pump();
    }

    /**
     * Fails the chunks of {@code fetch} not done yet. A chunk still waiting to start is dropped;
     * one in flight keeps its bounce slot (a READ may still land in it) and its place in {@code
     * inFlight} until its late answer comes, which then only gives both slots back.
     */
    private void timeOut(Fetch fetch, long firstRequestId, int chunks) {
      PeerException timeout = PeerException.timedOut(describe(), transport.fetchTimeoutMs);
      for (long id = firstRequestId; id < firstRequestId + chunks; id++) {
        Chunk chunk = inFlight.get(id);
        if (chunk == null) {
          synchronized (lock) {
            for (Chunk w : waiting) {
              if (w.requestId == id) {
                chunk = w;
                break;
              }
            }
            if (chunk != null && chunk.claim()) {
              waiting.remove(chunk);
              chunk.fetch.chunkDone(timeout);
            }
          }
          continue;
        }
        if (chunk.fetch == fetch && chunk.claim()) {
          chunk.timedOut = true;
          chunk.fetch.chunkDone(timeout);
        }
      }
    }

    /** A timed-out chunk's late end: its bounce slot and the server's slot come back. */
    private void retire(Chunk chunk) {
      if (!chunk.timedOut) {
        return; // failed with the channel: nothing is reused any more
      }
      if (chunk.serverSlot != NO_SLOT) {
        try {
          endpoint.send(out -> putRelease(out, chunk.requestId, chunk.serverSlot));
        } catch (PeerException e) {
          fail(e);
        }
      }
      inFlight.remove(chunk.requestId);
      synchronized (lock) {
        freeBounce.add(chunk.bounceSlot);
      }
      pump();
    }

    private void finish(Chunk chunk, PeerException failed) {
      if (!chunk.claim()) {
        retire(chunk);
        return;
      }
      inFlight.remove(chunk.requestId);
      synchronized (lock) {
        freeBounce.add(chunk.bounceSlot);
      }
      chunk.fetch.chunkDone(failed);
      pump();
    }

    /** Fails every chunk not being copied, and every later fetch; closes the endpoint. */
    private void fail(PeerException cause) {
      List<Chunk> failed = new ArrayList<>();
      synchronized (lock) {
        if (broken != null) {
          return;
        }
        broken = cause;
        failed.addAll(waiting);
        waiting.clear();
        failed.addAll(inFlight.values());
      }
      for (Chunk chunk : failed) {
        if (chunk.claim()) {
          chunk.fetch.chunkDone(cause);
        }
      }
      if (!transport.execute(this::releaseEndpoint)) {
        releaseEndpoint();
      }
    }

    private void releaseEndpoint() {
      endpoint.release();
      clients.channels.decrementAndGet();
    }

    @Override
    public String describe() {
      return "disni peer=" + address;
    }

    @Override
    public void close() {
      fail(new PeerException(describe() + ": channel closed"));
      transport.forget(this);
    }

    @Override
    public String toString() {
      return describe();
    }
  }
}
