package io.sluice.server;

import io.sluice.client.BatchMetadata;
import io.sluice.client.CudaSlot;
import io.sluice.client.Delivery;
import io.sluice.client.Protocol;
import io.sluice.client.ShmLayout;
import io.sluice.client.ShmSlot;
import io.sluice.client.StreamRequest;
import io.sluice.format.DatasetFormatException;
import io.sluice.nativeio.CudaException;
import io.sluice.planner.EpochPlan;
import io.sluice.prefetch.Prefetcher;
import io.sluice.prefetch.StreamStats;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.arrow.flight.BackpressureStrategy;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightProducer.ServerStreamListener;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.OutOfMemoryException;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.VectorLoader;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.VectorUnloader;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Streams one rank's epoch: for each step, assembles the batch and sends it with its app_metadata.
 * Runs on a daemon stream thread (never a gRPC thread), waiting on the client's flow control there.
 * Each batch is built in fresh buffers and loaded into the stream's root, so buffers still queued
 * for the wire are never overwritten.
 */
final class RankStreamer implements Runnable {
  private static final Logger LOG = Logger.getLogger(RankStreamer.class.getName());
  private static final long READY_WAIT_MS = 30_000;
  private static final long DRAIN_WAIT_NS = 10_000_000_000L;

  /** Batches a shm ring holds (halved while the memory budget cannot hold it). */
  static final int RING_SLOTS = 8;

  static final long MIN_RING_BYTES = 4L << 20;
  static final long MAX_RING_BYTES = 512L << 20;

  /** Where a cuda batch's tokens start after its ids: device arrays stay 256-byte aligned. */
  static final int DEVICE_ALIGNMENT = 256;

  private final ServedDataset dataset;
  private final StreamRequest request;
  private final EpochPlan plan;
  private final Schema schema;
  private final MemorySplit memory; // takes back memory the caches borrowed, for a ring
  private final BufferAllocator parent;
  private final ServerStreamListener listener;
  private final Prefetcher.Consumer readAhead;
  private final ShmDelivery shm;
  private final DaemonMetrics metrics;
  private ShmRing ring;
  private boolean ringRefused;
  private ShmTemplate template; // set after the first shm batch when the schema allows
  private final TokenBatches.TokenShape tokenShape; // null unless a token schema
  private DeviceRing device; // a cuda stream's pool, from its first batch
  private boolean deviceRefused;
  private boolean templateTried;
  private volatile long resumeCursor; // the cursor after the last batch sent
  private volatile boolean stopRequested;
  // Flight's strategy goes back to waiting when woken by interruptWait alone; stop() must end it.
  private final BackpressureStrategy.CallbackBackpressureStrategy flow =
      new BackpressureStrategy.CallbackBackpressureStrategy() {
        @Override
        protected boolean shouldContinueWaiting(ServerStreamListener l, long remainingMillis) {
          return !stopRequested;
        }
      };
  // Counted down once the stream writes no more (ended, failed or stopped), before it drains.
  private final java.util.concurrent.CountDownLatch writesDone =
      new java.util.concurrent.CountDownLatch(1);

  RankStreamer(
      ServedDataset dataset,
      StreamRequest request,
      EpochPlan plan,
      Schema schema,
      BufferAllocator parent,
      MemorySplit memory,
      ServerStreamListener listener,
      Prefetcher.Consumer readAhead,
      ShmDelivery shm,
      DaemonMetrics metrics) {
    this.memory = memory;
    this.dataset = dataset;
    this.request = request;
    this.plan = plan;
    this.schema = schema;
    this.parent = parent;
    this.listener = listener;
    this.readAhead = readAhead;
    this.shm = shm;
    this.metrics = metrics;
    this.resumeCursor = request.startCursor();
    this.tokenShape = TokenBatches.tokenShape(schema);
  }

  String datasetName() {
    return dataset.name();
  }

  /** Steps read ahead of this stream now, or -1 when it reads on demand. */
  long lead() {
    return readAhead == null ? -1 : readAhead.stats().snapshot().lead();
  }

  @Override
  public void run() {
    String name =
        "stream-"
            + dataset.name()
            + "-r"
            + request.rank()
            + "-"
            + Thread.currentThread().threadId();
    BufferAllocator allocator = parent.newChildAllocator(name, 0, Long.MAX_VALUE);
    try (VectorSchemaRoot out = VectorSchemaRoot.create(schema, allocator)) {
      stream(allocator, out);
    } catch (Exception e) {
      LOG.log(Level.WARNING, name + " failed", e);
      String where = "dataset=" + dataset.name() + " rank=" + request.rank() + ": ";
      metrics.error(
          switch (e) {
            case OutOfMemoryException oom -> DaemonMetrics.ErrorKind.RESOURCE_EXHAUSTED;
            case DatasetFormatException bad -> DaemonMetrics.ErrorKind.BAD_DATA;
            case CudaException gpu -> DaemonMetrics.ErrorKind.UNAVAILABLE;
            default -> DaemonMetrics.ErrorKind.INTERNAL;
          });
      CallStatus status =
          switch (e) {
            case OutOfMemoryException oom ->
                CallStatus.RESOURCE_EXHAUSTED.withDescription(
                    where
                        + "a batch does not fit the daemon's memory budget ("
                        + parent.getLimit()
                        + " bytes for batches, "
                        + parent.getAllocatedMemory()
                        + " in use, "
                        + memory.lentBytes()
                        + " still lent to the sample caches): lower batch_size or raise"
                        + " --memory-budget");
            case DatasetFormatException bad ->
                CallStatus.UNAVAILABLE.withDescription(where + bad.getMessage());
            case CudaException gpu ->
                CallStatus.UNAVAILABLE.withDescription(
                    where + "delivery=cuda failed on the daemon's GPU: " + gpu.getMessage());
            default -> CallStatus.INTERNAL.withDescription(where + e.getMessage());
          };
      try {
        listener.error(status.withCause(e).toRuntimeException());
      } catch (RuntimeException alreadyClosed) {
        e.addSuppressed(alreadyClosed);
      }
    } finally {
      writesDone.countDown();
      if (ring != null) {
        ring.close();
      }
      if (device != null) {
        device.close();
      }
      if (readAhead != null) {
        readAhead.close();
        StreamStats.Snapshot s = readAhead.stats().snapshot();
        LOG.fine(
            () ->
                name
                    + ": batches="
                    + s.batches()
                    + " hits="
                    + s.hits()
                    + " misses="
                    + s.misses()
                    + " stalls="
                    + s.stalls()
                    + " stall_ms="
                    + s.stallNanos() / 1_000_000
                    + " lead="
                    + s.lead());
      }
      closeWhenDrained(allocator, name);
    }
  }

  /**
   * Batches already handed to gRPC hold buffers until written or discarded (a cancelled stream
   * discards them on the transport's thread), so wait for them before closing the allocator.
   */
  private static void closeWhenDrained(BufferAllocator allocator, String name) {
    long deadline = System.nanoTime() + DRAIN_WAIT_NS;
    while (allocator.getAllocatedMemory() > 0 && System.nanoTime() < deadline) {
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    try {
      allocator.close();
    } catch (IllegalStateException leaked) {
      LOG.log(Level.SEVERE, name + ": batch buffers not released after the stream ended", leaked);
    }
  }

  /**
   * Asks the stream to end at its next step, waking it if it waits on the client: the daemon stops
   * its streams itself at shutdown instead of relying on every cancel reaching it first.
   */
  void stop() {
    stopRequested = true;
    flow.interruptWait();
  }

  /** Waits until the stream writes no more; false when {@code nanos} passed first. */
  boolean awaitWritesDone(long nanos) throws InterruptedException {
    return writesDone.await(nanos, java.util.concurrent.TimeUnit.NANOSECONDS);
  }

  private void stream(BufferAllocator allocator, VectorSchemaRoot out) throws Exception {
    flow.register(listener);
    listener.start(out);
    BatchAssembler assembler = new BatchAssembler(dataset.source(), schema, allocator);
    try (TokenBatches tokens = TokenBatches.of(schema, allocator)) {
      stream(assembler, tokens, new VectorLoader(out), allocator);
    }
  }

  private void stream(
      BatchAssembler assembler, TokenBatches tokens, VectorLoader loader, BufferAllocator allocator)
      throws Exception {
    int b = request.batchSize();
    long[] ids = new long[b];
    boolean[] padded = new boolean[b];
    long steps = plan.stepCount();
    for (long step = plan.stepAtCursor(request.startCursor()); step < steps; step++) {
      if (!awaitReady()) {
        endStopped();
        return;
      }
      plan.fill(request.rank(), step, ids, padded);
      int paddedCount = 0;
      for (boolean p : padded) {
        paddedCount += p ? 1 : 0;
      }
      Sent sent = send(assembler, tokens, loader, allocator, step, ids, b);
      if (sent == null) {
        endStopped();
        return;
      }
      ShmSlot slot = sent.slot();
      long bodyBytes = sent.bodyBytes();
      BatchMetadata meta =
          new BatchMetadata(
              request.epoch(),
              step,
              plan.cursorAfter(step),
              slot != null ? Delivery.SHM : sent.cuda() != null ? Delivery.CUDA : Delivery.CPU,
              paddedCount,
              steps,
              slot,
              sent.cuda());
      byte[] json = meta.toJson();
      if (listener.isCancelled()) {
        // gRPC drops a message sent on a cancelled call without releasing its buffers.
        return;
      }
      ArrowBuf metaBuf = allocator.buffer(json.length);
      metaBuf.setBytes(0, json);
      metaBuf.writerIndex(json.length);
      if (slot != null || sent.cuda() != null) {
        listener.putMetadata(metaBuf); // the batch itself waits in the ring or on the device
      } else {
        listener.putNext(metaBuf); // ownership of metaBuf passes to Flight
      }
      resumeCursor = meta.cursor();
      metrics.delivered(dataset.name(), meta.delivery(), bodyBytes, b);
    }
    // The region goes when the stream ends: first let the client read and release every batch.
    if (ring != null && !ring.awaitAllReleased(this::stopped)) {
      endStopped();
      return;
    }
    if (device != null && !device.awaitAllReleased(this::stopped)) {
      endStopped();
      return;
    }
    listener.completed();
  }

  /** The daemon is shutting down or the client went away. */
  private boolean stopped() {
    return stopRequested || listener.isCancelled();
  }

  private void endStopped() {
    if (stopRequested && !listener.isCancelled()) {
      listener.error(
          CallStatus.UNAVAILABLE
              .withDescription(
                  "daemon is shutting down; this stream had sent the batches up to cursor="
                      + resumeCursor
                      + ": resume from the cursor of the last batch you took")
              .toRuntimeException());
    }
  }

  /**
   * Where a step's batch went: a ring slot (shm), the GPU (cuda) or the stream's root (both null).
   */
  private record Sent(ShmSlot slot, CudaSlot cuda, long bodyBytes) {
    Sent(ShmSlot slot, long bodyBytes) {
      this(slot, null, bodyBytes);
    }
  }

  /**
   * Gets the step's samples and puts the batch where it goes: into the ring (through the template
   * when it fits, else assembled and copied) or into the stream's root (built by {@code tokens}
   * when the schema and sizes allow, else assembled). Null when the stream was stopped while
   * waiting for ring space.
   */
  private Sent send(
      BatchAssembler assembler,
      TokenBatches tokens,
      VectorLoader loader,
      BufferAllocator allocator,
      long step,
      long[] ids,
      int b)
      throws Exception {
    if (request.delivery() == Delivery.CUDA && !deviceRefused) {
      Sent sent = toDevice(assembler, step, ids, b);
      if (sent != DEVICE_REFUSED) {
        return sent;
      }
    }
    boolean shmWanted = request.delivery() == Delivery.SHM;
    if (readAhead == null) {
      try (VectorSchemaRoot batch = assembler.assemble(ids, b)) {
        return place(batch, loader, allocator, shmWanted);
      }
    }
    try (Prefetcher.Batch samples = readAhead.take(step, ids, b)) {
      if (shmWanted && template != null && template.fits(b, samples.bytes())) {
        ShmSlot slot =
            toRing(template.bytes(), at -> template.write(ring.region(), at, ids, samples.bytes()));
        return slot == STOPPED ? null : new Sent(slot, slot.length());
      }
      if (!shmWanted && tokens != null && tokens.fits(b, samples.bytes())) {
        try (ArrowRecordBatch rb = tokens.build(ids, b, samples.bytes())) {
          loader.load(rb);
          return new Sent(null, rb.computeBodyLength());
        }
      }
      try (VectorSchemaRoot batch = assembler.assembleFrom(ids, b, samples.bytes())) {
        return place(batch, loader, allocator, shmWanted);
      }
    }
  }

  /**
   * Marks "no device pool could be had: send this batch in the stream" apart from stopped (null).
   */
  private static final Sent DEVICE_REFUSED = new Sent(null, 0);

  /**
   * Puts the step's batch into the stream's device pool (opened on the first batch): ids then
   * tokens, gathered in pinned staging memory and copied up in one copy. Null when the stream was
   * stopped while waiting for pool space; {@link #DEVICE_REFUSED} when no pool fits (the batch then
   * goes in the stream, as shm does).
   */
  private Sent toDevice(BatchAssembler assembler, long step, long[] ids, int b) throws Exception {
    TokenBatches.TokenShape tokens = tokenShape; // resolving cuda checked the schema is one
    long sampleBytes = tokens.sampleBytes();
    long idsBytes = roundUp(8L * b, DEVICE_ALIGNMENT);
    long total = idsBytes + sampleBytes * b;
    // Whole multiples of the alignment, so every slot (placed back to back from 0) starts on it.
    long slotBytes = roundUp(total, DEVICE_ALIGNMENT);
    if (device == null) {
      device = openDeviceRing(slotBytes);
      if (device == null) {
        deviceRefused = true;
        return DEVICE_REFUSED;
      }
    }
    long seq = device.nextSeq();
    long at = device.place(slotBytes, this::stopped);
    if (at < 0) {
      return null;
    }
    MemorySegment staging = device.staging();
    MemorySegment.copy(ids, 0, staging, TokenBatches.SAMPLE_ID, 0, b);
    if (readAhead == null) {
      try (VectorSchemaRoot batch = assembler.assemble(ids, b)) {
        FixedSizeListVector list = (FixedSizeListVector) batch.getVector(tokens.column());
        BaseFixedWidthVector data = (BaseFixedWidthVector) list.getDataVector();
        MemorySegment all =
            MemorySegment.ofBuffer(data.getDataBuffer().nioBuffer(0, (int) (sampleBytes * b)));
        MemorySegment.copy(all, 0, staging, idsBytes, sampleBytes * b);
      }
    } else {
      try (Prefetcher.Batch samples = readAhead.take(step, ids, b)) {
        MemorySegment[] bytes = samples.bytes();
        int bad = TokenBatches.firstOfOtherSize(bytes, b, sampleBytes);
        if (bad >= 0) {
          throw new IllegalStateException(
              "sample_id="
                  + ids[bad]
                  + " came with "
                  + bytes[bad].byteSize()
                  + " bytes, not "
                  + sampleBytes);
        }
        TokenBatches.gather(bytes, b, sampleBytes, staging, idsBytes);
      }
    }
    device.upload(at, total);
    CudaSlot slot =
        new CudaSlot(
            device.controlPath(),
            device.device(),
            device.poolBytes(),
            seq == 0 ? device.handle() : null,
            at,
            total,
            seq,
            List.of(
                new CudaSlot.Column(Protocol.SAMPLE_ID_COLUMN, at, "uint64", List.of((long) b)),
                new CudaSlot.Column(
                    tokens.column(),
                    at + idsBytes,
                    tokens.dtype(),
                    List.of((long) b, (long) tokens.listSize()))));
    return new Sent(null, slot, total);
  }

  /** A device pool for a few batches of {@code batchBytes}; null when none fits. */
  private DeviceRing openDeviceRing(long batchBytes) throws java.io.IOException {
    String name = dataset.name() + "-r" + request.rank();
    return sizedRing(
        batchBytes,
        0,
        "device pool (its staging buffer over the memory budget, or a batch over half of "
            + MAX_RING_BYTES
            + " bytes)",
        pool ->
            DeviceRing.create(
                shm.newControlPath(name),
                shm.cuda(),
                request.cudaDevice(),
                pool,
                batchBytes,
                parent));
  }

  @FunctionalInterface
  private interface RingMaker<R> {
    /** A ring of {@code capacity} bytes, or null when the budget cannot hold it. */
    R make(long capacity) throws java.io.IOException;
  }

  /**
   * The first ring {@code make} gives for {@link #RING_SLOTS} batches of {@code batchBytes}, then
   * for half as many, down to 2 (each at least {@link #MIN_RING_BYTES}, at most {@link
   * #MAX_RING_BYTES}); null, logged naming {@code what}, when none fits.
   */
  private <R> R sizedRing(long batchBytes, long slack, String what, RingMaker<R> make)
      throws java.io.IOException {
    for (int slots = RING_SLOTS; slots >= 2; slots /= 2) {
      long capacity = Math.max(MIN_RING_BYTES, batchBytes * slots + slack);
      if (capacity > MAX_RING_BYTES) {
        continue;
      }
      R r = make.make(capacity);
      if (r == null && memory.makeRoom(capacity)) {
        r = make.make(capacity); // the caches gave back delivery memory they had on loan
      }
      if (r != null) {
        return r;
      }
    }
    LOG.info(
        "dataset="
            + dataset.name()
            + " rank="
            + request.rank()
            + ": no "
            + what
            + " fits "
            + RING_SLOTS
            + " x "
            + batchBytes
            + " bytes; sending batches in the stream");
    return null;
  }

  private Sent place(
      VectorSchemaRoot batch, VectorLoader loader, BufferAllocator allocator, boolean shmWanted)
      throws java.io.IOException {
    ShmSlot slot = shmWanted ? writeToRing(batch, allocator) : null;
    if (slot == STOPPED) {
      return null;
    }
    return new Sent(slot, slot != null ? slot.length() : load(loader, batch));
  }

  /** Marks "stopped while waiting for ring space" apart from "send this batch inline" (null). */
  private static final ShmSlot STOPPED = new ShmSlot("stopped", ShmLayout.HEADER_BYTES, 1, 0);

  /**
   * Writes {@code batch} as one Arrow IPC message into the stream's ring, waiting for the client to
   * release room. Null when it goes inline instead (no ring fits the budget, or the batch is more
   * than half the ring); {@link #STOPPED} when the stream ended while waiting.
   */
  private ShmSlot writeToRing(VectorSchemaRoot batch, BufferAllocator allocator)
      throws java.io.IOException {
    try (ArrowRecordBatch rb = new VectorUnloader(batch).getRecordBatch()) {
      ShmMessage message = ShmMessage.of(rb);
      if (ring == null && !ringRefused) {
        ring = openRing(message.bytes());
        ringRefused = ring == null;
      }
      if (ring == null || message.bytes() > ring.capacity() / 2) {
        return null;
      }
      return toRing(
          message.bytes(),
          at -> {
            message.writeTo(ring.region(), at);
            if (!templateTried && readAhead != null) {
              templateTried = true;
              template =
                  ShmTemplate.of(
                      schema, rb, ring.region().asSlice(at, message.bytes()), message.bodyOffset());
            }
          });
    }
  }

  /**
   * Waits for {@code bytes} of ring space, has {@code write} fill them at their offset, and returns
   * the slot; {@link #STOPPED} when the stream ended while waiting.
   */
  private ShmSlot toRing(long bytes, java.util.function.LongConsumer write) {
    long seq = ring.nextSeq();
    long at = ring.place(bytes, this::stopped);
    if (at < 0) {
      return STOPPED;
    }
    write.accept(at);
    return new ShmSlot(ring.path(), at, bytes, seq);
  }

  /** A ring for a few batches of this size, within the budget; null when none fits. */
  private ShmRing openRing(long messageBytes) throws java.io.IOException {
    String name = dataset.name() + "-r" + request.rank();
    return sizedRing(
        messageBytes,
        ShmLayout.MESSAGE_ALIGNMENT,
        "shm ring within the memory budget",
        capacity -> shm.newRing(name, capacity, parent));
  }

  private static long roundUp(long value, long alignment) {
    return (value + alignment - 1) / alignment * alignment;
  }

  /** Loads {@code batch} into the stream's root; returns its IPC body bytes. */
  private static long load(VectorLoader loader, VectorSchemaRoot batch) {
    try (ArrowRecordBatch rb = new VectorUnloader(batch).getRecordBatch()) {
      loader.load(rb);
      return rb.computeBodyLength();
    }
  }

  private boolean awaitReady() {
    while (!stopRequested) {
      switch (flow.waitForListener(READY_WAIT_MS)) {
        case READY:
          return true;
        case CANCELLED:
          return false;
        case TIMEOUT:
          if (listener.isCancelled()) {
            return false;
          }
          continue; // a slow trainer is normal: keep waiting
        case OTHER:
        default:
          return !stopped();
      }
    }
    return false;
  }
}
