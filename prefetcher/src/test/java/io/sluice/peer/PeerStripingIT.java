package io.sluice.peer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Striping over two NICs, for real: a peer server in its own network namespace reached over two
 * veth pairs, each limited by {@code tc tbf} to {@value #RATE} (two NICs of a node). A striped
 * fetch over both paths moves samples at least 1.8 times as fast as over one, and when one link
 * goes down mid-transfer its share is redone over the other with every byte right. Needs root
 * (network namespaces); skipped with the reason elsewhere.
 */
@Timeout(180)
class PeerStripingIT {
  private static final String RATE = "160mbit";
  private static final int SAMPLE_BYTES = 64 << 10;
  private static final int SAMPLES = 512; // 32 MiB
  private static final int PORT = 18816;
  private static final String NS = "sluice-stripe-" + ProcessHandle.current().pid();
  private static final String[] HOST = {"10.231.1.1", "10.231.2.1"};
  private static final String[] PEER = {"10.231.1.2", "10.231.2.2"};
  private static final String[] VETH = {
    "sls" + ProcessHandle.current().pid() % 100000 + "a",
    "sls" + ProcessHandle.current().pid() % 100000 + "b"
  };

  static Process server;
  static PeerTransport transport;

  static ProcessResult run(String... cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    return new ProcessResult(p.waitFor(), out);
  }

  record ProcessResult(int code, String output) {}

  static void must(String... cmd) throws IOException, InterruptedException {
    ProcessResult r = run(cmd);
    if (r.code() != 0) {
      throw new IllegalStateException(String.join(" ", cmd) + " failed: " + r.output());
    }
  }

  @BeforeAll
  static void network() throws Exception {
    ProcessResult probe = run("ip", "netns", "add", NS);
    Assumptions.assumeTrue(
        probe.code() == 0,
        () -> "no network namespaces here (needs root and iproute2): " + probe.output());
    for (int i = 0; i < 2; i++) {
      String ns = VETH[i] + "n";
      must("ip", "link", "add", VETH[i], "type", "veth", "peer", "name", ns);
      must("ip", "link", "set", ns, "netns", NS);
      must("ip", "addr", "add", HOST[i] + "/24", "dev", VETH[i]);
      must("ip", "link", "set", VETH[i], "up");
      must("ip", "netns", "exec", NS, "ip", "addr", "add", PEER[i] + "/24", "dev", ns);
      must("ip", "netns", "exec", NS, "ip", "link", "set", ns, "up");
      // The NIC's speed: samples flow from the peer, so its side's egress is what limits.
      must(
          "ip", "netns", "exec", NS, "tc", "qdisc", "add", "dev", ns, "root", "tbf", "rate", RATE,
          "burst", "64kb", "latency", "50ms");
    }
    must("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up");
    List<String> cmd =
        new ArrayList<>(
            List.of(
                "ip",
                "netns",
                "exec",
                NS,
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    for (String flag : System.getProperty("sluice.jvm.flags", "").split(" ")) {
      if (!flag.isBlank()) {
        cmd.add(flag);
      }
    }
    cmd.addAll(
        List.of(
            "-cp",
            System.getProperty("java.class.path"),
            PeerServerMain.class.getName(),
            "tcp",
            Integer.toString(SAMPLES),
            Integer.toString(SAMPLE_BYTES),
            PEER[0] + ":" + PORT,
            PEER[1] + ":" + PORT));
    server = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    BufferedReader in =
        new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
    StringBuilder seen = new StringBuilder();
    String line;
    while ((line = in.readLine()) != null && !line.startsWith("serving")) {
      seen.append(line).append('\n');
    }
    assertTrue(line != null, "peer server in the namespace did not start:\n" + seen);
    Thread.ofPlatform()
        .daemon()
        .start(
            () -> {
              try {
                in.transferTo(java.io.Writer.nullWriter());
              } catch (IOException ignored) {
                // the server went away
              }
            });
    transport = TcpTransport.create(2, 2_000); // the daemon's peer.timeout_ms
  }

  @AfterAll
  static void cleanUp() throws Exception {
    if (transport != null) {
      transport.close();
    }
    if (server != null) {
      server.getOutputStream().close();
      if (!server.waitFor(10, TimeUnit.SECONDS)) {
        server.destroyForcibly();
      }
    }
    for (String v : VETH) {
      run("ip", "link", "del", v);
    }
    run("ip", "netns", "del", NS);
  }

  /** Fetches every sample, 64 at a time with 4 fetches in flight; returns bytes per second. */
  private static double transfer(StripedChannel ch, boolean check) throws Exception {
    try (Arena arena = Arena.ofShared()) {
      MemorySegment[] dsts = new MemorySegment[SAMPLES];
      for (int i = 0; i < SAMPLES; i++) {
        dsts[i] = arena.allocate(SAMPLE_BYTES);
      }
      long start = System.nanoTime();
      List<CompletableFuture<boolean[]>> inFlight = new ArrayList<>();
      for (int first = 0; first < SAMPLES; first += 64) {
        long[] ids = new long[64];
        for (int i = 0; i < 64; i++) {
          ids[i] = first + i;
        }
        inFlight.add(ch.fetch("synthetic", ids, Arrays.copyOfRange(dsts, first, first + 64)));
        if (inFlight.size() >= 4) {
          assertAllFilled(inFlight.removeFirst().get(60, TimeUnit.SECONDS));
        }
      }
      for (CompletableFuture<boolean[]> f : inFlight) {
        assertAllFilled(f.get(60, TimeUnit.SECONDS));
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      if (check) {
        for (int id = 0; id < SAMPLES; id++) {
          PeerTransportConformance.assertSample(id, dsts[id]);
        }
      }
      return (double) SAMPLES * SAMPLE_BYTES / seconds;
    }
  }

  private static void assertAllFilled(boolean[] filled) {
    for (boolean f : filled) {
      assertTrue(f, "every sample arrives");
    }
  }

  private static StripedChannel channel(int paths) {
    List<PeerPath> p = new ArrayList<>();
    for (int i = 0; i < paths; i++) {
      p.add(new PeerPath(new InetSocketAddress(PEER[i], PORT), 1));
    }
    return new StripedChannel(transport, p, 60_000);
  }

  @Test
  void twoLinksCarryAtLeastOnePointEightTimesOne() throws Exception {
    try (StripedChannel one = channel(1);
        StripedChannel two = channel(2)) {
      transfer(one, true); // connect and warm up both
      transfer(two, true);
      double[] single = new double[3];
      double[] striped = new double[3];
      for (int round = 0; round < 3; round++) {
        single[round] = transfer(one, false);
        striped[round] = transfer(two, false);
      }
      Arrays.sort(single);
      Arrays.sort(striped);
      double ratio = striped[1] / single[1];
      System.out.printf(
          "PeerStripingIT: %s links, one %.1f MB/s, two %.1f MB/s (medians of 3): %.2fx; per path %s%n",
          RATE,
          single[1] / 1e6,
          striped[1] / 1e6,
          ratio,
          two.paths().stream()
              .map(p -> p.path().address().getHostString() + "=" + p.bytes() / 1_000_000 + "MB")
              .toList());
      assertTrue(
          ratio >= 1.8,
          "striped " + striped[1] + " B/s vs one link " + single[1] + " B/s: " + ratio + "x");
      long a = two.paths().get(0).bytes();
      long b = two.paths().get(1).bytes();
      assertTrue(
          Math.abs(a - b) <= SAMPLE_BYTES * 64L, "equal weights, equal shares: " + a + " vs " + b);
    }
  }

  @Test
  void aLinkThatGoesDownHasItsShareRedoneOnTheOther() throws Exception {
    try (StripedChannel two = channel(2)) {
      transfer(two, true);
      // The second NIC goes down: its connection stalls, then is refused or times out.
      must("ip", "link", "set", VETH[1], "down");
      try {
        double rate = transfer(two, true);
        System.out.printf(
            "PeerStripingIT: with one link down, %.1f MB/s, every byte right%n", rate / 1e6);
        assertEquals(1, two.paths().get(1).failures(), "the dead path was dropped once");
      } finally {
        must("ip", "link", "set", VETH[1], "up");
      }
    }
  }
}
