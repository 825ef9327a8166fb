package io.sluice.peer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PeerTopologyTest {
  private static final int PORT = 8816;

  /** Asserts {@code call} throws IllegalArgumentException whose message holds every fragment. */
  private static String rejects(Executable call, String... fragments) {
    String message = assertThrows(IllegalArgumentException.class, call).getMessage();
    for (String fragment : fragments) {
      assertTrue(message.contains(fragment), "\"" + message + "\" lacks \"" + fragment + "\"");
    }
    return message;
  }

  private static InetAddress ip(String literal) {
    return InetAddress.ofLiteral(literal);
  }

  private static List<String> hosts(PeerTopology t) {
    List<String> out = new ArrayList<>();
    for (PeerNode node : t.nodes()) {
      out.add(node.paths().getFirst().address().getHostString());
    }
    return out;
  }

  private static Map<String, String> slurm(String nodeList, String nodeId) {
    return Map.of("SLURM_JOB_NODELIST", nodeList, "SLURM_NODEID", nodeId);
  }

  // parse

  @Test
  void parsesNodesPathsAndWeights() {
    PeerTopology t =
        PeerTopology.parse("10.0.1.1:8816+10.0.2.1:8816@2,10.0.1.2:8816+10.0.2.2:8816@2", 1, 9000);
    assertEquals(2, t.nodeCount());
    assertEquals(1, t.nodeRank());
    PeerNode second = t.self();
    assertEquals(1, second.rank());
    assertEquals(
        List.of(
            new PeerPath(new InetSocketAddress(ip("10.0.1.2"), 8816), 1),
            new PeerPath(new InetSocketAddress(ip("10.0.2.2"), 8816), 2)),
        second.paths());
    assertEquals(List.of(t.nodes().get(0)), t.peers());
    assertEquals(0, t.peers().getFirst().rank());
    assertEquals("10.0.1.1:8816+10.0.2.1:8816@2,10.0.1.2:8816+10.0.2.2:8816@2", t.toString());
  }

  @Test
  void hostNamesStayUnresolvedAndTakeTheDefaultPort() {
    PeerTopology t = PeerTopology.parse("node-a, node-b:9001 ,node_c.example.org", 0, PORT);
    InetSocketAddress a = t.nodes().get(0).paths().getFirst().address();
    assertTrue(a.isUnresolved(), a.toString());
    assertEquals("node-a", a.getHostString());
    assertEquals(PORT, a.getPort());
    assertEquals(9001, t.nodes().get(1).paths().getFirst().address().getPort());
    assertEquals(PORT, t.nodes().get(2).paths().getFirst().address().getPort());
    assertEquals("node-a:8816,node-b:9001,node_c.example.org:8816", t.toString());
  }

  @Test
  void ipLiteralsAreAddressesWithoutALookup() {
    InetSocketAddress a =
        PeerTopology.parse("192.168.7.9", 0, PORT).self().paths().getFirst().address();
    assertFalse(a.isUnresolved());
    assertInstanceOf(Inet4Address.class, a.getAddress());
    assertEquals(new InetSocketAddress(ip("192.168.7.9"), PORT), a);
  }

  @Test
  void ipv6InBrackets() {
    PeerTopology t = PeerTopology.parse("[2001:db8::1]:9000@3+[2001:db8:1::1],[::1]", 0, PORT);
    List<PeerPath> paths = t.self().paths();
    assertInstanceOf(Inet6Address.class, paths.get(0).address().getAddress());
    assertEquals(new PeerPath(new InetSocketAddress(ip("2001:db8::1"), 9000), 3), paths.get(0));
    assertEquals(new PeerPath(new InetSocketAddress(ip("2001:db8:1::1"), PORT), 1), paths.get(1));
    assertEquals(
        new InetSocketAddress(ip("::1"), PORT), t.nodes().get(1).paths().getFirst().address());
    assertEquals(
        "[2001:db8:0:0:0:0:0:1]:9000@3+[2001:db8:1:0:0:0:0:1]:8816,[0:0:0:0:0:0:0:1]:8816",
        t.toString());
  }

  @Test
  void fractionalAndLargeWeights() {
    PeerTopology t = PeerTopology.parse("a:1@0.25+b:1@1.5+c:1@1e-3+d:1@1e20+e:1@7.0", 0, PORT);
    List<Double> weights = t.self().paths().stream().map(PeerPath::weight).toList();
    assertEquals(List.of(0.25, 1.5, 0.001, 1e20, 7.0), weights);
    assertEquals("a:1@0.25+b:1@1.5+c:1@0.001+d:1@1.0E20+e:1@7", t.toString());
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "a:1",
        "a:1,b:2,c:3",
        "10.0.1.1:8816+10.0.2.1:8816@2,10.0.1.2:8816+10.0.2.2:8816@2",
        "host-1@0.5+[fe80::1%2]:7@3,[::ffff:10.1.2.3]:9,[2001:db8::]",
        "a:65535@1e-9,b:1@123456789012345678",
        "Node-A.Example.COM:80+10.0.0.1:81@0.1"
      })
  void toStringParsesBackToAnEqualTopology(String spec) {
    PeerTopology t = PeerTopology.parse(spec, 0, PORT);
    PeerTopology again = PeerTopology.parse(t.toString(), 0, PORT);
    assertEquals(t, again);
    assertEquals(t.hashCode(), again.hashCode());
    assertEquals(t.toString(), again.toString());
    // Equality sees the node rank, so a round trip cannot pass by ignoring it.
    if (t.nodeCount() > 1) {
      assertFalse(t.equals(PeerTopology.parse(t.toString(), 1, PORT)));
    }
  }

  @Test
  void defaultPortDoesNotLeakIntoExplicitPorts() {
    assertEquals(PeerTopology.parse("a:1,b:2", 0, 5), PeerTopology.parse("a:1,b:2", 0, 6));
    assertFalse(PeerTopology.parse("a,b", 0, 5).equals(PeerTopology.parse("a,b", 0, 6)));
  }

  @Test
  void badPortsNameTheEntryAndTheValue() {
    rejects(
        () -> PeerTopology.parse("a:1,b:1,host:notaport", 0, PORT),
        "peers entry 2 \"host:notaport\"",
        "port=notaport must be a number in [1, 65535]");
    rejects(() -> PeerTopology.parse("a:70000", 0, PORT), "peers entry 0", "port=70000");
    rejects(() -> PeerTopology.parse("a:0", 0, PORT), "port=0 must be");
    rejects(() -> PeerTopology.parse("a:-1", 0, PORT), "port=-1 must be");
    rejects(() -> PeerTopology.parse("a:", 0, PORT), "peers entry 0 \"a:\"", "port is empty");
    rejects(() -> PeerTopology.parse("a:1+b:x", 0, PORT), "peers entry 0 path 1 \"b:x\"", "port=x");
    rejects(() -> PeerTopology.parse("[::1]:y", 0, PORT), "port=y");
    rejects(() -> PeerTopology.parse("a", 0, 0), "default_port=0 must be in [1, 65535]");
    rejects(() -> PeerTopology.parse("a", 0, 65536), "default_port=65536");
  }

  @Test
  void badNodeRank() {
    rejects(() -> PeerTopology.parse("a,b,c", 3, PORT), "node_rank=3 must be in [0, nodes=3)");
    rejects(() -> PeerTopology.parse("a,b,c", -1, PORT), "node_rank=-1 must be in [0, nodes=3)");
  }

  @Test
  void badWeights() {
    rejects(
        () -> PeerTopology.parse("a:1@0", 0, PORT),
        "peers entry 0 \"a:1@0\"",
        "weight=0 must be > 0");
    rejects(() -> PeerTopology.parse("a:1@0.0", 0, PORT), "weight=0.0 must be > 0");
    rejects(() -> PeerTopology.parse("a:1@-2", 0, PORT), "weight=-2 must be a number > 0");
    rejects(() -> PeerTopology.parse("a:1@", 0, PORT), "weight= must be a number");
    rejects(() -> PeerTopology.parse("a:1@NaN", 0, PORT), "weight=NaN");
    rejects(() -> PeerTopology.parse("a:1@2d", 0, PORT), "weight=2d");
    rejects(() -> PeerTopology.parse("a:1@1e999", 0, PORT), "weight=1e999 must be finite");
    rejects(() -> new PeerPath(InetSocketAddress.createUnresolved("a", 1), 0), "weight=0.0");
    rejects(
        () -> new PeerPath(InetSocketAddress.createUnresolved("a", 1), Double.NaN), "weight=NaN");
    rejects(
        () -> new PeerPath(InetSocketAddress.createUnresolved("a", 1), Double.POSITIVE_INFINITY),
        "weight=Infinity");
  }

  @Test
  void badHosts() {
    rejects(
        () -> PeerTopology.parse("::1:80", 0, PORT),
        "host=::1:80",
        "write an IPv6 address as [addr]:port");
    rejects(() -> PeerTopology.parse("[::1:80", 0, PORT), "host=[::1:80 has no closing ']'");
    rejects(() -> PeerTopology.parse("[zz::1]:80", 0, PORT), "host=[zz::1] is not an IPv6 address");
    rejects(() -> PeerTopology.parse("[::1]80", 0, PORT), "\"80\" after host=[::1] must be :PORT");
    rejects(() -> PeerTopology.parse("10.1:80", 0, PORT), "host=10.1 is not an IPv4 address");
    rejects(() -> PeerTopology.parse("300.1.1.1", 0, PORT), "host=300.1.1.1 is not an IPv4");
    rejects(() -> PeerTopology.parse("a b:1", 0, PORT), "host=a b is not a host name");
    rejects(() -> PeerTopology.parse("a/b", 0, PORT), "host=a/b is not a host name");
    rejects(() -> PeerTopology.parse(":80", 0, PORT), "peers entry 0 \":80\"", "host= is empty");
  }

  @Test
  void emptySpecEntriesAndPaths() {
    rejects(() -> PeerTopology.parse("", 0, PORT), "peers=\"\" is empty");
    rejects(() -> PeerTopology.parse("   ", 0, PORT), "is empty");
    rejects(() -> PeerTopology.parse(null, 0, PORT), "peers=\"\" is empty");
    rejects(() -> PeerTopology.parse("a:1,,b:1", 0, PORT), "peers entry 1 is empty");
    rejects(() -> PeerTopology.parse("a:1,b:1,", 0, PORT), "peers entry 2 is empty");
    rejects(() -> PeerTopology.parse("a:1+", 0, PORT), "peers entry 0 path 1 is empty");
  }

  @Test
  void anAddressMayAppearOnlyOnce() {
    rejects(
        () -> PeerTopology.parse("a:1,b:1,a:1", 0, PORT),
        "peers entry 2 \"a:1\": address=a:1 repeats entry 0");
    // Host names compare without case, as DNS does.
    rejects(() -> PeerTopology.parse("node1:1,NODE1:1", 0, PORT), "repeats entry 0");
    // Defaulted ports count.
    rejects(() -> PeerTopology.parse("a,a:" + PORT, 0, PORT), "repeats entry 0");
    rejects(
        () -> PeerTopology.parse("10.0.0.1:5+10.0.0.1:5", 0, PORT),
        "peers entry 0 path 1",
        "address=10.0.0.1:5 repeats a path of the same entry");
    rejects(
        () -> PeerTopology.parse("a:1+b:1,c:1+b:1", 0, PORT),
        "peers entry 1 path 1 \"b:1\"",
        "repeats entry 0");
    // Same host, other port: two daemons, fine.
    assertEquals(2, PeerTopology.parse("a:1,a:2", 0, PORT).nodeCount());
  }

  // Slurm

  @Test
  void slurmZeroPaddedRange() {
    PeerTopology t = PeerTopology.fromSlurm(slurm("n[001-010]", "3"), PORT);
    assertEquals(
        List.of("n001", "n002", "n003", "n004", "n005", "n006", "n007", "n008", "n009", "n010"),
        hosts(t));
    assertEquals(3, t.nodeRank());
    InetSocketAddress self = t.self().paths().getFirst().address();
    assertTrue(self.isUnresolved());
    assertEquals(InetSocketAddress.createUnresolved("n004", PORT), self);
    assertEquals(9, t.peers().size());
  }

  @Test
  void slurmExpansions() {
    assertEquals(
        List.of("a1", "a3", "a5", "a6"),
        hosts(PeerTopology.fromSlurm(slurm("a[1,3,5-6]", "0"), 1)));
    assertEquals(
        List.of("x1", "y2", "y3", "z"),
        hosts(PeerTopology.fromSlurm(slurm("x1,y[2-3],z", "0"), 1)));
    assertEquals(
        List.of("r1n1", "r1n2", "r2n1", "r2n2"),
        hosts(PeerTopology.fromSlurm(slurm("r[1-2]n[1-2]", "0"), 1)));
    assertEquals(
        List.of("rack1-n001", "rack1-n002", "rack1-n003", "login1"),
        hosts(PeerTopology.fromSlurm(slurm("rack1-n[001-003],login1", "0"), 1)));
    assertEquals(
        List.of("gpu01", "gpu02", "gpu07", "cpu3", "cpu4"),
        hosts(PeerTopology.fromSlurm(slurm("gpu[01-02,07],cpu[3-4]", "0"), 1)));
    // Padding follows the low bound's digits; a range may cross into more digits.
    assertEquals(
        List.of("n8", "n9", "n10"), hosts(PeerTopology.fromSlurm(slurm("n[8-10]", "0"), 1)));
    assertEquals(
        List.of("n098", "n099", "n100"),
        hosts(PeerTopology.fromSlurm(slurm("n[098-100]", "0"), 1)));
    assertEquals(
        List.of("gpu1-ib", "gpu2-ib", "gpu3-ib"),
        hosts(PeerTopology.fromSlurm(slurm("gpu[1-3]-ib", "0"), 1)));
    assertEquals(
        List.of("a1b3", "a1b4", "a2b3", "a2b4", "c"),
        hosts(PeerTopology.fromSlurm(slurm("a[1-2]b[3-4],c", "0"), 1)));
    assertEquals(List.of("solo"), hosts(PeerTopology.fromSlurm(slurm(" solo ", "0"), 1)));
  }

  @Test
  void slurmTopologyPrintsAsAnExplicitList() {
    PeerTopology t = PeerTopology.fromSlurm(slurm("n[1-3]", "2"), PORT);
    assertEquals("n1:8816,n2:8816,n3:8816", t.toString());
    assertEquals(t, PeerTopology.parse(t.toString(), 2, 1));
  }

  @Test
  void slurmMissingOrMalformedEnvironment() {
    rejects(
        () -> PeerTopology.fromSlurm(Map.of("SLURM_NODEID", "0"), PORT),
        "SLURM_JOB_NODELIST is not set");
    rejects(() -> PeerTopology.fromSlurm(slurm(" ", "0"), PORT), "SLURM_JOB_NODELIST is not set");
    rejects(
        () -> PeerTopology.fromSlurm(Map.of("SLURM_JOB_NODELIST", "a"), PORT),
        "SLURM_NODEID is not set");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("a,b", "x"), PORT), "SLURM_NODEID=x is not a number");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("a,b", "2"), PORT),
        "SLURM_NODEID=2 must be in [0, nodes=2) of SLURM_JOB_NODELIST=a,b");
    rejects(() -> PeerTopology.fromSlurm(slurm("a,b", "-1"), PORT), "SLURM_NODEID=-1 must be in");
    rejects(() -> PeerTopology.fromSlurm(slurm("a", "0"), 0), "default_port=0");
  }

  @Test
  void slurmMalformedHostLists() {
    String var = "SLURM_JOB_NODELIST=";
    rejects(
        () -> PeerTopology.fromSlurm(slurm("n[1-3", "0"), PORT),
        var + "n[1-3",
        "'[' at index 1 is not closed");
    rejects(() -> PeerTopology.fromSlurm(slurm("n1]", "0"), PORT), "']' at index 2 has no '['");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("n[[1]]", "0"), PORT),
        "'[' at index 2 is inside brackets");
    rejects(() -> PeerTopology.fromSlurm(slurm("n[3-1]", "0"), PORT), "range=3-1 runs high to low");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("n[a]", "0"), PORT), "range=\"a\"", "must be N or N-M");
    rejects(() -> PeerTopology.fromSlurm(slurm("n[]", "0"), PORT), "range=\"\"");
    rejects(() -> PeerTopology.fromSlurm(slurm("n[1,,2]", "0"), PORT), "range=\"\"");
    rejects(() -> PeerTopology.fromSlurm(slurm("n[1-2-3]", "0"), PORT), "range=\"1-2-3\"");
    rejects(() -> PeerTopology.fromSlurm(slurm("a,,b", "0"), PORT), "empty host name at index 2");
    rejects(() -> PeerTopology.fromSlurm(slurm("a,", "0"), PORT), "empty host name at index 2");
    rejects(() -> PeerTopology.fromSlurm(slurm("a b", "0"), PORT), "host=a b is not a host name");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("n[1-2],n1", "0"), PORT),
        var + "n[1-2],n1: host=n1 is both node 0 and node 2");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("n[0-999999999]", "0"), PORT),
        "expands to more than " + PeerTopology.MAX_NODES + " hosts");
    rejects(
        () -> PeerTopology.fromSlurm(slurm("a[0-999]b[0-999]", "0"), PORT),
        "expands to more than " + PeerTopology.MAX_NODES + " hosts");
  }

  // DNS

  private static final InetAddress A = ip("10.0.0.1");
  private static final InetAddress B = ip("10.0.0.2");
  private static final InetAddress C = ip("10.0.1.1");
  private static final InetAddress V6 = ip("fd00::5");

  private static PeerTopology.Resolver answering(String service, InetAddress... records) {
    return host -> {
      if (!host.equals(service)) {
        throw new UnknownHostException(host);
      }
      return records.clone();
    };
  }

  @Test
  void dnsOrderDoesNotDependOnTheResolversOrder() {
    PeerTopology first =
        PeerTopology.fromDns("svc", PORT, answering("svc", V6, C, A, B), Set.of(B));
    PeerTopology second =
        PeerTopology.fromDns("svc", PORT, answering("svc", B, A, V6, C), Set.of(B));
    assertEquals(first, second);
    assertEquals(4, first.nodeCount());
    List<InetAddress> order = new ArrayList<>();
    for (PeerNode node : first.nodes()) {
      order.add(node.paths().getFirst().address().getAddress());
    }
    // By address bytes: the IPv4 records (4 bytes) sort before fd00:: (first byte 0xfd, unsigned).
    assertEquals(List.of(A, B, C, V6), order);
    assertEquals(1, first.nodeRank());
    assertEquals(new InetSocketAddress(B, PORT), first.self().paths().getFirst().address());
    assertEquals(
        "10.0.0.1:8816,10.0.0.2:8816,10.0.1.1:8816,[fd00:0:0:0:0:0:0:5]:8816", first.toString());
    assertEquals(first, PeerTopology.parse(first.toString(), 1, 1));
  }

  @Test
  void dnsRankIsTheFirstRecordThatIsLocal() {
    InetAddress other = ip("192.168.0.9");
    assertEquals(
        2,
        PeerTopology.fromDns("svc", PORT, answering("svc", A, B, C), Set.of(other, V6, C))
            .nodeRank());
    assertEquals(
        0, PeerTopology.fromDns("svc", PORT, answering("svc", C, B, A), Set.of(C, A)).nodeRank());
    assertEquals(
        3, PeerTopology.fromDns("svc", PORT, answering("svc", A, V6, B, C), Set.of(V6)).nodeRank());
  }

  @Test
  void dnsRecordsCarryNoNameAndRepeatsCollapse() throws UnknownHostException {
    InetAddress named = InetAddress.getByAddress("svc", A.getAddress());
    PeerTopology t = PeerTopology.fromDns("svc", 9, answering("svc", named, B, A), Set.of(A));
    assertEquals(2, t.nodeCount());
    assertEquals("10.0.0.1:9,10.0.0.2:9", t.toString());
    // No host name attached (toString would print "svc/10.0.0.1"), and no reverse lookup made.
    assertEquals("/10.0.0.1", t.self().paths().getFirst().address().getAddress().toString());
  }

  @Test
  void dnsFailures() {
    rejects(
        () -> PeerTopology.fromDns("svc", PORT, answering("svc"), Set.of(A)),
        "dns service=svc has no A/AAAA records");
    rejects(
        () -> PeerTopology.fromDns("svc", PORT, host -> null, Set.of(A)),
        "dns service=svc has no A/AAAA records");
    rejects(
        () -> PeerTopology.fromDns("missing", PORT, answering("svc", A), Set.of(A)),
        "dns service=missing does not resolve");
    rejects(
        () -> PeerTopology.fromDns("svc", PORT, answering("svc", C, A), Set.of(B, ip("127.0.0.1"))),
        "dns service=svc records [10.0.0.1, 10.0.1.1] include none of this node's addresses [10.0.0.2, 127.0.0.1]");
    rejects(
        () -> PeerTopology.fromDns("svc", 0, answering("svc", A), Set.of(A)),
        "port=0 must be in [1, 65535]");
    rejects(
        () -> PeerTopology.fromDns(" ", PORT, answering("svc", A), Set.of(A)),
        "dns service name is empty");
  }

  // Ranks

  @Test
  void ranksAreSpreadInBlocks() {
    PeerTopology t = PeerTopology.parse("a,b,c,d", 2, PORT);
    assertEquals(4, t.firstRank(8));
    assertEquals(6, t.endRank(8));
    assertEquals(2, t.firstRank(4));
    assertEquals(3, t.endRank(4));
    int[] expected = {0, 0, 1, 1, 2, 2, 3, 3};
    for (int rank = 0; rank < 8; rank++) {
      assertEquals(expected[rank], t.nodeOfRank(rank, 8), "rank=" + rank);
    }
  }

  @Test
  void everyRankHasExactlyOneNodeAndItServesIt() {
    int nodes = 3;
    int worldSize = 24;
    int[] served = new int[worldSize];
    for (int n = 0; n < nodes; n++) {
      PeerTopology t = PeerTopology.parse("a,b,c", n, PORT);
      for (int rank = t.firstRank(worldSize); rank < t.endRank(worldSize); rank++) {
        served[rank]++;
        assertEquals(n, t.nodeOfRank(rank, worldSize), "rank=" + rank);
      }
    }
    for (int rank = 0; rank < worldSize; rank++) {
      assertEquals(1, served[rank], "rank=" + rank);
    }
  }

  @Test
  void worldSizeMustSplitEvenly() {
    PeerTopology t = PeerTopology.parse("a,b,c,d", 0, PORT);
    rejects(() -> t.nodeOfRank(0, 6), "world_size=6 must be a positive multiple of nodes=4");
    rejects(() -> t.nodeOfRank(0, 2), "world_size=2", "nodes=4");
    rejects(() -> t.firstRank(0), "world_size=0", "nodes=4");
    rejects(() -> t.endRank(-4), "world_size=-4", "nodes=4");
    rejects(() -> t.nodeOfRank(8, 8), "rank=8 must be in [0, world_size=8)");
    rejects(() -> t.nodeOfRank(-1, 8), "rank=-1 must be in [0, world_size=8)");
  }

  // single and resolve

  @Test
  void singleNode() {
    PeerTopology t = PeerTopology.single();
    assertEquals(1, t.nodeCount());
    assertEquals(0, t.nodeRank());
    assertTrue(t.peers().isEmpty());
    assertEquals(0, t.self().rank());
    assertEquals("single", t.toString());
    assertEquals(0, t.nodeOfRank(3, 4));
    assertEquals(0, t.firstRank(4));
    assertEquals(4, t.endRank(4));
    assertSame(t, PeerTopology.resolve("single", -1, PORT, Map.of()));
    assertSame(t, PeerTopology.resolve(" single ", 0, PORT, Map.of()));
    rejects(
        () -> PeerTopology.resolve("single", 1, PORT, Map.of()),
        "node_rank=1 disagrees",
        "node_rank=0");
  }

  @Test
  void resolveExplicitList() {
    assertEquals(
        PeerTopology.parse("a:1,b:2", 1, PORT), PeerTopology.resolve("a:1,b:2", 1, PORT, Map.of()));
    rejects(
        () -> PeerTopology.resolve("a:1,b:2", -1, PORT, Map.of()),
        "node_rank is not given",
        "peers=a:1,b:2");
    rejects(() -> PeerTopology.resolve("a:1,b:2", -2, PORT, Map.of()), "node_rank=-2 must be >= 0");
    rejects(() -> PeerTopology.resolve("", -1, PORT, Map.of()), "peers=\"\" is empty");
    rejects(
        () -> PeerTopology.resolve("a:1,b:2", 2, PORT, Map.of()),
        "node_rank=2 must be in [0, nodes=2)");
  }

  @Test
  void resolveSlurm() {
    Map<String, String> env = slurm("gpu[1-4]", "1");
    PeerTopology t = PeerTopology.resolve("slurm", -1, PORT, env);
    assertEquals(PeerTopology.fromSlurm(env, PORT), t);
    assertEquals(1, t.nodeRank());
    assertEquals(t, PeerTopology.resolve("slurm", 1, PORT, env));
    rejects(
        () -> PeerTopology.resolve("slurm", 2, PORT, env),
        "node_rank=2 disagrees with SLURM_NODEID=1");
    rejects(
        () -> PeerTopology.resolve("slurm", -1, PORT, Map.of()), "SLURM_JOB_NODELIST is not set");
  }

  @Test
  void resolveDnsThroughTheSystemResolver() {
    // localhost resolves from the hosts file, and loopback is up on every machine that runs tests.
    PeerTopology t = PeerTopology.resolve("dns:localhost:9000", -1, PORT, Map.of());
    InetSocketAddress self = t.self().paths().getFirst().address();
    assertTrue(self.getAddress().isLoopbackAddress(), self.toString());
    assertEquals(9000, self.getPort());
    assertEquals(
        PORT,
        PeerTopology.resolve("dns:localhost", -1, PORT, Map.of())
            .self()
            .paths()
            .getFirst()
            .address()
            .getPort());
    int other = t.nodeCount();
    rejects(
        () -> PeerTopology.resolve("dns:localhost:9000", other, PORT, Map.of()),
        "node_rank=" + other + " disagrees with dns service=localhost",
        "node_rank=" + t.nodeRank());
    rejects(
        () -> PeerTopology.resolve("dns:svc:abc", -1, PORT, Map.of()),
        "peers=dns:svc:abc: port=abc");
    rejects(() -> PeerTopology.resolve("dns:", -1, PORT, Map.of()), "dns service name is empty");
  }

  @Test
  void recordsRejectWhatCannotBeANode() {
    rejects(() -> new PeerNode(2, List.of()), "node rank=2 has no paths");
    rejects(
        () -> new PeerNode(-1, List.of(new PeerPath(InetSocketAddress.createUnresolved("a", 1)))),
        "rank=-1 must be >= 0");
  }
}
