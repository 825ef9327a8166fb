package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.client.Delivery;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.demo.DemoDataset;
import io.sluice.read.ReadBackends;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.UInt8Vector;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The Java client riding out a daemon restart: a stream opened with a reconnect timeout goes on at
 * the next batch after the daemon on its port stops and a new one starts there.
 */
class ReconnectIT {
  // 64 MiB: the rest of the epoch cannot sit in the connection's buffers (HTTP/2 windows, socket
  // buffers: a few MiB to tens of MiB on loopback), so a daemon stopped a few batches in is
  // stopped mid-stream and the client has to reconnect.
  static final int SHARDS = 4;
  static final int PER_SHARD = 2048;
  static final int SEQ_LEN = 4096;
  static final int BATCH = 32;
  static final long BUDGET = 512L << 20;

  @TempDir static Path dir;

  @BeforeAll
  static void data() throws Exception {
    DemoDataset.ensure(dir, SHARDS, PER_SHARD, SEQ_LEN);
  }

  static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  static SluiceDaemon daemon(int port) throws Exception {
    return daemon(port, "d");
  }

  /** A daemon on {@code port} (0: any) serving the test's dataset as {@code name}. */
  static SluiceDaemon daemon(int port, String name) throws Exception {
    return SluiceDaemon.start(
        "127.0.0.1", port, Map.of(name, dir), FlightTransport.AUTO, ReadBackends.AUTO, BUDGET);
  }

  static long[] ids(RankStream s) {
    UInt8Vector v = (UInt8Vector) s.root().getVector("sample_id");
    long[] out = new long[s.root().getRowCount()];
    for (int i = 0; i < out.length; i++) {
      out[i] = v.get(i);
    }
    return out;
  }

  /** Why the stream gave up: the note it attached to its failure, or "" when none. */
  static String why(Throwable e) {
    return e.getSuppressed().length == 0 ? "" : e.getSuppressed()[0].getMessage();
  }

  static int countReconnectNotes(Throwable e) {
    int n = 0;
    for (Throwable t : e.getSuppressed()) {
      if (t.getMessage() != null && t.getMessage().contains("reconnect timeout 0")) {
        n++;
      }
    }
    return n;
  }

  @ParameterizedTest
  @EnumSource(
      value = Delivery.class,
      names = {"CPU", "SHM"})
  @Timeout(value = 180, unit = TimeUnit.SECONDS)
  void aRestartedDaemonIsPickedUpAtTheNextBatch(Delivery delivery) throws Exception {
    int port = freePort();
    StreamRequest req = StreamRequest.of("d", 0, 1, BATCH).withSeed(5).withDelivery(delivery);
    List<long[]> uninterrupted = new ArrayList<>();
    List<long[]> got = new ArrayList<>();
    SluiceDaemon first = daemon(port);
    CompletableFuture<SluiceDaemon> second = null;
    int reconnects;
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE)) {
      try (SluiceClient c = SluiceClient.connect(first.uri(), alloc);
          RankStream s = c.open(req)) {
        while (s.next()) {
          uninterrupted.add(ids(s));
        }
      }
      try (SluiceClient c = SluiceClient.connect(first.uri(), alloc);
          RankStream s = c.open(req, Duration.ofSeconds(120))) {
        for (int i = 0; i < 5; i++) {
          assertTrue(s.next());
          got.add(ids(s));
        }
        first.close(); // the graceful stop: the stream ends with UNAVAILABLE at its next step
        second =
            CompletableFuture.supplyAsync(
                () -> {
                  try {
                    Thread.sleep(1000); // while the client tries again
                    return daemon(port);
                  } catch (Exception e) {
                    throw new IllegalStateException(e);
                  }
                });
        while (s.next()) {
          got.add(ids(s));
          assertEquals(delivery, s.metadata().delivery(), "the same delivery after reconnecting");
        }
        reconnects = s.reconnects();
      }
    } finally {
      first.close();
      if (second != null) {
        second.get(60, TimeUnit.SECONDS).close();
      }
    }
    assertEquals((long) SHARDS * PER_SHARD / BATCH, uninterrupted.size());
    assertEquals(uninterrupted.size(), got.size(), "no batch lost or repeated");
    for (int i = 0; i < got.size(); i++) {
      assertTrue(Arrays.equals(uninterrupted.get(i), got.get(i)), "batch " + i);
    }
    assertEquals(1, reconnects, "the stop came mid-stream: the client reconnected once");
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void aDaemonThatStaysDownIsGivenUpAfterTheTimeout() throws Exception {
    StreamRequest req = StreamRequest.of("d", 0, 1, BATCH).withDelivery(Delivery.CPU);
    SluiceDaemon d = daemon(0);
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceClient c = SluiceClient.connect(d.uri(), alloc);
        RankStream s = c.open(req, Duration.ofMillis(1500))) {
      assertTrue(s.next());
      long cursor = s.position();
      d.close();
      long t0 = System.nanoTime();
      FlightRuntimeException e = TokenStreams.drainToError(s);
      assertEquals(FlightStatusCode.UNAVAILABLE, e.status().code(), e.getMessage());
      assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30));
      String why = why(e);
      assertTrue(why.contains("could not open it again in reconnect timeout 1.5 s"), why);
      assertTrue(why.contains("dataset=d rank=0 epoch=0 cursor="), why);
      assertTrue(s.position() >= cursor, "it read on up to the break");
      assertTrue(why.contains("cursor=" + s.position()), why);
      assertEquals(1, s.reconnects());
      assertSame(e, assertThrows(FlightRuntimeException.class, s::next), "given up: it stays so");
      assertEquals(1, e.getSuppressed().length, "the reason, once");
    } finally {
      d.close();
    }
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void aRestartedDaemonThatRefusesTheStreamIsGivenUpAtOnce() throws Exception {
    int port = freePort();
    StreamRequest req = StreamRequest.of("d", 0, 1, BATCH).withDelivery(Delivery.CPU);
    SluiceDaemon first = daemon(port);
    SluiceDaemon second = null;
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceClient c = SluiceClient.connect(first.uri(), alloc);
        RankStream s = c.open(req, Duration.ofSeconds(60))) {
      assertTrue(s.next());
      first.close();
      // Back on its port without the dataset: it answers, and refuses the stream.
      second = daemon(port, "other");
      long t0 = System.nanoTime();
      FlightRuntimeException e = TokenStreams.drainToError(s);
      assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "not the whole timeout");
      assertEquals(FlightStatusCode.NOT_FOUND, e.status().code(), e.getMessage());
      String why = why(e);
      assertTrue(why.contains("the daemon answered and refused the stream"), why);
      assertEquals(1, s.reconnects());
    } finally {
      first.close();
      if (second != null) {
        second.close();
      }
    }
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void withoutATimeoutTheFirstBreakIsThrown() throws Exception {
    StreamRequest req = StreamRequest.of("d", 0, 1, BATCH).withDelivery(Delivery.CPU);
    SluiceDaemon d = daemon(0);
    try (BufferAllocator alloc = new RootAllocator(Long.MAX_VALUE);
        SluiceClient c = SluiceClient.connect(d.uri(), alloc)) {
      RankStream s = c.open(req);
      try {
        assertTrue(s.next());
        d.close();
        FlightRuntimeException e = TokenStreams.drainToError(s);
        assertEquals(FlightStatusCode.UNAVAILABLE, e.status().code(), e.getMessage());
        assertEquals(0, s.reconnects());
        assertEquals(1, countReconnectNotes(e), "the break says it was not opened again");
      } finally {
        s.close();
        s.close(); // a second close does nothing (the allocator's close checks for leaks)
      }
    } finally {
      d.close();
    }
  }
}
