package io.sluice.peer;

import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The daemons of one multi-node job, one per node, in an order every node computes alike, each
 * reachable over one or more weighted paths (one per NIC); immutable.
 *
 * <p>Three sources give the order: an explicit list ({@link #parse}), Slurm's environment ({@link
 * #fromSlurm}) and a Kubernetes headless service ({@link #fromDns}); {@link #resolve} picks one
 * from the daemon's {@code --peers} value. Global ranks are spread over the nodes in equal blocks
 * ({@link #nodeOfRank}), the split torchrun and srun make with the same number of ranks per node.
 * Nothing here resolves a host name: addresses stay unresolved until a transport connects.
 */
public final class PeerTopology {
  /** The {@code --peers} value, and {@link #toString()}, of {@link #single()}. */
  public static final String SINGLE = "single";

  /** The most hosts one Slurm host list may expand to: "n[0-999999999]" must not fill the heap. */
  static final int MAX_NODES = 1 << 16;

  private static final String SLURM_NODELIST = "SLURM_JOB_NODELIST";
  private static final String SLURM_NODEID = "SLURM_NODEID";
  private static final String DNS_PREFIX = "dns:";

  /** Digits and dots only: meant as an IPv4 literal, never a host name. */
  private static final Pattern NUMERIC_HOST = Pattern.compile("[0-9.]+");

  private static final Pattern DOTTED_QUAD = Pattern.compile("[0-9]{1,3}(\\.[0-9]{1,3}){3}");
  private static final Pattern HOST_NAME = Pattern.compile("[A-Za-z0-9._-]+");
  private static final Pattern PORT = Pattern.compile("[0-9]{1,5}");

  /** What {@link Double#toString} prints for a finite positive value, and plain decimals. */
  private static final Pattern WEIGHT = Pattern.compile("[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?");

  private static final Pattern SLURM_RANGE = Pattern.compile("([0-9]{1,9})(?:-([0-9]{1,9}))?");

  private static final PeerTopology SINGLE_NODE =
      new PeerTopology(
          List.of(
              new PeerNode(
                  0,
                  List.of(
                      new PeerPath(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))))),
          0);

  private final List<PeerNode> nodes;
  private final int nodeRank;

  private PeerTopology(List<PeerNode> nodes, int nodeRank) {
    this.nodes = List.copyOf(nodes);
    for (int i = 0; i < this.nodes.size(); i++) {
      int rank = this.nodes.get(i).rank();
      if (rank != i) {
        throw new IllegalArgumentException("node " + i + " has rank=" + rank + ", must be " + i);
      }
    }
    if (nodeRank < 0 || nodeRank >= this.nodes.size()) {
      throw new IllegalArgumentException(
          "node_rank=" + nodeRank + " must be in [0, nodes=" + this.nodes.size() + ")");
    }
    this.nodeRank = nodeRank;
  }

  /**
   * A single node job (no peers). Its one path is the loopback address with port 0: a lone daemon
   * serves no peers. It prints as {@value #SINGLE}, which {@link #resolve} accepts.
   */
  public static PeerTopology single() {
    return SINGLE_NODE;
  }

  /**
   * An explicit list: nodes separated by {@code ','} (entry i is node rank i), a node's paths by
   * {@code '+'}, each path {@code HOST:PORT}, {@code HOST} alone (then {@code defaultPort}) or
   * {@code [IPv6]:PORT}, with an optional weight suffix {@code @W} (W > 0, default 1). Example:
   * {@code 10.0.1.1:8816+10.0.2.1:8816@2,10.0.1.2:8816+10.0.2.2:8816@2}. Host names stay
   * unresolved; an address may appear only once in the whole list.
   *
   * @throws IllegalArgumentException naming the entry, the field and the value that is wrong
   */
  public static PeerTopology parse(String spec, int nodeRank, int defaultPort) {
    checkPort("default_port", defaultPort);
    if (spec == null || spec.isBlank()) {
      throw new IllegalArgumentException(
          "peers=\""
              + (spec == null ? "" : spec)
              + "\" is empty: give HOST:PORT entries separated by ','");
    }
    String[] entries = spec.strip().split(",", -1);
    List<PeerNode> nodes = new ArrayList<>(entries.length);
    Map<InetSocketAddress, Integer> seen = new HashMap<>();
    for (int i = 0; i < entries.length; i++) {
      String entry = entries[i].strip();
      if (entry.isEmpty()) {
        throw new IllegalArgumentException("peers entry " + i + " is empty");
      }
      String[] texts = entry.split("\\+", -1);
      List<PeerPath> paths = new ArrayList<>(texts.length);
      for (int j = 0; j < texts.length; j++) {
        String text = texts[j].strip();
        String where = "peers entry " + i + (texts.length > 1 ? " path " + j : "");
        if (text.isEmpty()) {
          throw new IllegalArgumentException(where + " is empty");
        }
        where += " \"" + text + "\"";
        PeerPath path = parsePath(text, defaultPort, where);
        Integer before = seen.putIfAbsent(path.address(), i);
        if (before != null) {
          throw new IllegalArgumentException(
              where
                  + ": address="
                  + format(path.address())
                  + " repeats "
                  + (before == i ? "a path of the same entry" : "entry " + before));
        }
        paths.add(path);
      }
      nodes.add(new PeerNode(i, paths));
    }
    return new PeerTopology(nodes, nodeRank);
  }

  /**
   * From Slurm's environment: the hosts of {@code SLURM_JOB_NODELIST} in order, expanded from
   * Slurm's compressed syntax ({@code rack1-n[001-003],login1,r[1-2]n[1,4-5]}: zero padding follows
   * the low bound's digits, several bracket groups in one name multiply out, leftmost slowest),
   * each at {@code defaultPort}; this node's rank is {@code SLURM_NODEID}.
   *
   * @throws IllegalArgumentException naming the variable and its value when either is missing or
   *     malformed
   */
  public static PeerTopology fromSlurm(Map<String, String> env, int defaultPort) {
    checkPort("default_port", defaultPort);
    String list = env.get(SLURM_NODELIST);
    if (list == null || list.isBlank()) {
      throw new IllegalArgumentException(SLURM_NODELIST + " is not set");
    }
    String id = env.get(SLURM_NODEID);
    if (id == null || id.isBlank()) {
      throw new IllegalArgumentException(SLURM_NODEID + " is not set");
    }
    int nodeRank;
    try {
      nodeRank = Integer.parseInt(id.strip());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(SLURM_NODEID + "=" + id + " is not a number", e);
    }
    String where = SLURM_NODELIST + "=" + list;
    List<String> hosts = expandHostList(list.strip(), where);
    if (nodeRank < 0 || nodeRank >= hosts.size()) {
      throw new IllegalArgumentException(
          SLURM_NODEID + "=" + id + " must be in [0, nodes=" + hosts.size() + ") of " + where);
    }
    List<PeerNode> nodes = new ArrayList<>(hosts.size());
    Map<String, Integer> seen = new HashMap<>();
    for (int i = 0; i < hosts.size(); i++) {
      String host = hosts.get(i);
      Integer before = seen.putIfAbsent(host.toLowerCase(Locale.ROOT), i);
      if (before != null) {
        throw new IllegalArgumentException(
            where + ": host=" + host + " is both node " + before + " and node " + i);
      }
      InetSocketAddress address = address(host, defaultPort, where + ": host=" + host);
      nodes.add(new PeerNode(i, List.of(new PeerPath(address))));
    }
    return new PeerTopology(nodes, nodeRank);
  }

  /**
   * A Kubernetes headless service: every A/AAAA record of {@code serviceName} through {@code
   * resolver}, deduplicated and sorted by address bytes so every node computes the same order
   * whatever order DNS answers in, each at {@code port}; this node's rank is the index of the first
   * of them in {@code localAddresses}. A headless service lists only ready pods unless it sets
   * {@code publishNotReadyAddresses: true}, which a job that starts its daemons together needs.
   *
   * @throws IllegalArgumentException naming the service when it has no records, and listing the
   *     records and the local addresses when none is local
   */
  public static PeerTopology fromDns(
      String serviceName, int port, Resolver resolver, Set<InetAddress> localAddresses) {
    checkPort("port", port);
    if (serviceName == null || serviceName.isBlank()) {
      throw new IllegalArgumentException("dns service name is empty");
    }
    InetAddress[] records;
    try {
      records = resolver.resolve(serviceName);
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException(
          "dns service=" + serviceName + " does not resolve: " + e.getMessage(), e);
    }
    if (records == null || records.length == 0) {
      throw new IllegalArgumentException("dns service=" + serviceName + " has no A/AAAA records");
    }
    TreeMap<byte[], InetAddress> sorted = new TreeMap<>(Arrays::compareUnsigned);
    for (InetAddress record : records) {
      // Rebuilt from the bytes: drops the name and scope a resolver attaches, so every node prints
      // and compares the same address.
      byte[] bytes = record.getAddress();
      sorted.computeIfAbsent(bytes, PeerTopology::ofBytes);
    }
    List<InetAddress> order = List.copyOf(sorted.values());
    int nodeRank = -1;
    for (int i = 0; i < order.size() && nodeRank < 0; i++) {
      if (localAddresses.contains(order.get(i))) {
        nodeRank = i;
      }
    }
    if (nodeRank < 0) {
      TreeMap<byte[], InetAddress> local = new TreeMap<>(Arrays::compareUnsigned);
      localAddresses.forEach(a -> local.put(a.getAddress(), a));
      throw new IllegalArgumentException(
          "dns service="
              + serviceName
              + " records "
              + hostAddresses(order)
              + " include none of this node's addresses "
              + hostAddresses(local.values()));
    }
    List<PeerNode> nodes = new ArrayList<>(order.size());
    for (int i = 0; i < order.size(); i++) {
      nodes.add(new PeerNode(i, List.of(new PeerPath(new InetSocketAddress(order.get(i), port)))));
    }
    return new PeerTopology(nodes, nodeRank);
  }

  /**
   * Looks up a host's addresses; {@code InetAddress::getAllByName} in production, a fake in tests.
   */
  @FunctionalInterface
  public interface Resolver {
    InetAddress[] resolve(String host) throws UnknownHostException;
  }

  /**
   * The daemon's {@code --peers} value: {@code slurm} is {@link #fromSlurm}{@code (env,
   * defaultPort)}, {@code dns:NAME[:PORT]} is {@link #fromDns} with {@code
   * InetAddress::getAllByName} and every address of every up network interface, {@value #SINGLE} is
   * {@link #single()}, anything else {@link #parse}. {@code nodeRank} -1 means not given: an
   * explicit list needs it; the other sources say it themselves, and a given one must agree.
   *
   * @throws IllegalArgumentException when the source is malformed, or a given node rank disagrees
   *     with the source's, naming both
   * @throws UncheckedIOException when this node's network interfaces cannot be listed
   */
  public static PeerTopology resolve(
      String spec, int nodeRank, int defaultPort, Map<String, String> env) {
    Objects.requireNonNull(env, "env");
    if (nodeRank < -1) {
      throw new IllegalArgumentException(
          "node_rank=" + nodeRank + " must be >= 0, or -1 when not given");
    }
    String value = spec == null ? "" : spec.strip();
    if (value.equals(SINGLE)) {
      return agree(single(), nodeRank, "peers=" + SINGLE + ", a lone node at node_rank=0");
    }
    if (value.equals("slurm")) {
      PeerTopology slurm = fromSlurm(env, defaultPort);
      return agree(slurm, nodeRank, SLURM_NODEID + "=" + slurm.nodeRank);
    }
    if (value.startsWith(DNS_PREFIX)) {
      String service = value.substring(DNS_PREFIX.length());
      int port = defaultPort;
      int colon = service.indexOf(':');
      if (colon >= 0) {
        String portText = service.substring(colon + 1);
        port = parsePort(portText, "peers=" + value);
        service = service.substring(0, colon);
      }
      PeerTopology dns = fromDns(service, port, InetAddress::getAllByName, localAddresses());
      return agree(
          dns,
          nodeRank,
          "dns service=" + service + ", which puts this node at node_rank=" + dns.nodeRank);
    }
    if (nodeRank == -1 && !value.isEmpty()) {
      throw new IllegalArgumentException(
          "node_rank is not given: peers=" + value + " is an explicit list, which needs it");
    }
    return parse(value, nodeRank, defaultPort);
  }

  /** This node's rank: its index in {@link #nodes()}. */
  public int nodeRank() {
    return nodeRank;
  }

  public int nodeCount() {
    return nodes.size();
  }

  /** Every node, this one included, in rank order. */
  public List<PeerNode> nodes() {
    return nodes;
  }

  /** This node. */
  public PeerNode self() {
    return nodes.get(nodeRank);
  }

  /** Peers other than self, in rank order. */
  public List<PeerNode> peers() {
    List<PeerNode> peers = new ArrayList<>(nodes.size() - 1);
    for (PeerNode node : nodes) {
      if (node.rank() != nodeRank) {
        peers.add(node);
      }
    }
    return List.copyOf(peers);
  }

  /**
   * The node serving global {@code rank}: ranks are spread in blocks, node i serves {@code [i*R,
   * (i+1)*R)} with {@code R = worldSize / nodeCount}.
   *
   * @throws IllegalArgumentException when {@code worldSize} is not a positive multiple of the node
   *     count, or {@code rank} is not in {@code [0, worldSize)}
   */
  public int nodeOfRank(int rank, int worldSize) {
    int perNode = ranksPerNode(worldSize);
    if (rank < 0 || rank >= worldSize) {
      throw new IllegalArgumentException(
          "rank=" + rank + " must be in [0, world_size=" + worldSize + ")");
    }
    return rank / perNode;
  }

  /** The first global rank this node serves. */
  public int firstRank(int worldSize) {
    return nodeRank * ranksPerNode(worldSize);
  }

  /** One past the last global rank this node serves. */
  public int endRank(int worldSize) {
    return (nodeRank + 1) * ranksPerNode(worldSize);
  }

  /**
   * The effective topology in the syntax {@link #parse} accepts (weights of 1 left out), or {@value
   * #SINGLE} for {@link #single()}. Paths are the nodes'; the node rank is not part of it.
   */
  @Override
  public String toString() {
    if (this == SINGLE_NODE) {
      return SINGLE;
    }
    StringBuilder out = new StringBuilder();
    for (PeerNode node : nodes) {
      if (!out.isEmpty()) {
        out.append(',');
      }
      for (int j = 0; j < node.paths().size(); j++) {
        PeerPath path = node.paths().get(j);
        out.append(j == 0 ? "" : "+").append(format(path.address()));
        if (path.weight() != 1) {
          out.append('@').append(formatWeight(path.weight()));
        }
      }
    }
    return out.toString();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PeerTopology other
        && nodeRank == other.nodeRank
        && nodes.equals(other.nodes);
  }

  @Override
  public int hashCode() {
    return 31 * nodes.hashCode() + nodeRank;
  }

  private int ranksPerNode(int worldSize) {
    if (worldSize < nodes.size() || worldSize % nodes.size() != 0) {
      throw new IllegalArgumentException(
          "world_size="
              + worldSize
              + " must be a positive multiple of nodes="
              + nodes.size()
              + ": every node serves the same number of ranks");
    }
    return worldSize / nodes.size();
  }

  private static PeerTopology agree(PeerTopology topology, int nodeRank, String source) {
    if (nodeRank != -1 && nodeRank != topology.nodeRank) {
      throw new IllegalArgumentException("node_rank=" + nodeRank + " disagrees with " + source);
    }
    return topology;
  }

  /** {@code HOST[:PORT][@W]} or {@code [IPv6][:PORT][@W]}; {@code where} prefixes every message. */
  private static PeerPath parsePath(String text, int defaultPort, String where) {
    String hostPort = text;
    double weight = 1;
    int at = text.lastIndexOf('@');
    if (at >= 0) {
      String weightText = text.substring(at + 1);
      hostPort = text.substring(0, at);
      if (!WEIGHT.matcher(weightText).matches()) {
        throw new IllegalArgumentException(
            where + ": weight=" + weightText + " must be a number > 0");
      }
      weight = Double.parseDouble(weightText);
      if (weight == 0) {
        throw new IllegalArgumentException(where + ": weight=" + weightText + " must be > 0");
      }
      if (Double.isInfinite(weight)) {
        throw new IllegalArgumentException(where + ": weight=" + weightText + " must be finite");
      }
    }
    if (hostPort.startsWith("[")) {
      int close = hostPort.indexOf(']');
      if (close < 0) {
        throw new IllegalArgumentException(where + ": host=" + hostPort + " has no closing ']'");
      }
      String host = hostPort.substring(1, close);
      String rest = hostPort.substring(close + 1);
      int port = defaultPort;
      if (!rest.isEmpty()) {
        if (rest.charAt(0) != ':') {
          throw new IllegalArgumentException(
              where + ": \"" + rest + "\" after host=[" + host + "] must be :PORT");
        }
        port = parsePort(rest.substring(1), where);
      }
      InetAddress ip;
      try {
        ip = Inet6Address.ofLiteral(host);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(
            where + ": host=[" + host + "] is not an IPv6 address", e);
      }
      return new PeerPath(new InetSocketAddress(ip, port), weight);
    }
    int colon = hostPort.indexOf(':');
    if (colon != hostPort.lastIndexOf(':')) {
      throw new IllegalArgumentException(
          where + ": host=" + hostPort + " has several ':': write an IPv6 address as [addr]:port");
    }
    String host = colon < 0 ? hostPort : hostPort.substring(0, colon);
    int port = colon < 0 ? defaultPort : parsePort(hostPort.substring(colon + 1), where);
    return new PeerPath(address(host, port, where + ": host=" + host), weight);
  }

  /** An IPv4 literal's address, or a host name's unresolved one. */
  private static InetSocketAddress address(String host, int port, String where) {
    if (host.isEmpty()) {
      throw new IllegalArgumentException(where + " is empty");
    }
    if (NUMERIC_HOST.matcher(host).matches()) {
      // Only a.b.c.d: ofLiteral also takes "10.1" and "167772161", easy to write by mistake.
      if (!DOTTED_QUAD.matcher(host).matches()) {
        throw new IllegalArgumentException(where + " is not an IPv4 address a.b.c.d");
      }
      try {
        return new InetSocketAddress(Inet4Address.ofLiteral(host), port);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(where + " is not an IPv4 address a.b.c.d", e);
      }
    }
    if (!HOST_NAME.matcher(host).matches()) {
      throw new IllegalArgumentException(
          where + " is not a host name: letters, digits, '.', '-' and '_' only");
    }
    return InetSocketAddress.createUnresolved(host, port);
  }

  private static int parsePort(String text, String where) {
    if (text.isEmpty()) {
      throw new IllegalArgumentException(where + ": port is empty after ':'");
    }
    int port = PORT.matcher(text).matches() ? Integer.parseInt(text) : 0;
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException(
          where + ": port=" + text + " must be a number in [1, 65535]");
    }
    return port;
  }

  private static void checkPort(String field, int port) {
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException(field + "=" + port + " must be in [1, 65535]");
    }
  }

  /** {@code host:port}, {@code a.b.c.d:port} or {@code [v6]:port}: what {@link #parse} reads. */
  private static String format(InetSocketAddress address) {
    InetAddress ip = address.getAddress();
    String host =
        ip == null
            ? address.getHostString()
            : ip instanceof Inet6Address ? "[" + ip.getHostAddress() + "]" : ip.getHostAddress();
    return host + ":" + address.getPort();
  }

  private static String formatWeight(double weight) {
    return weight == Math.rint(weight) && weight < 1e15
        ? Long.toString((long) weight)
        : Double.toString(weight);
  }

  private static InetAddress ofBytes(byte[] bytes) {
    try {
      return InetAddress.getByAddress(bytes);
    } catch (UnknownHostException e) {
      // Only for a length other than 4 or 16, which no InetAddress has.
      throw new AssertionError("address of " + bytes.length + " bytes", e);
    }
  }

  private static List<String> hostAddresses(Iterable<InetAddress> addresses) {
    List<String> out = new ArrayList<>();
    addresses.forEach(a -> out.add(a.getHostAddress()));
    return out;
  }

  private static Set<InetAddress> localAddresses() {
    Set<InetAddress> local = new HashSet<>();
    try {
      for (NetworkInterface nic : NetworkInterface.networkInterfaces().toList()) {
        if (nic.isUp()) {
          nic.inetAddresses().forEach(local::add);
        }
      }
    } catch (SocketException e) {
      throw new UncheckedIOException("cannot list this node's network interfaces", e);
    }
    return local;
  }

  /**
   * Expands Slurm's compressed host list: names separated by {@code ','} outside brackets, each
   * name text and {@code [ranges]} groups, a range {@code N} or {@code N-M} padded to the digits of
   * N, the groups of one name multiplied out leftmost slowest ({@code r[1-2]n[1-2]} is r1n1, r1n2,
   * r2n1, r2n2).
   */
  static List<String> expandHostList(String list, String where) {
    List<String> hosts = new ArrayList<>();
    int start = 0;
    int open = -1;
    for (int i = 0; i < list.length(); i++) {
      char c = list.charAt(i);
      if (c == '[') {
        if (open >= 0) {
          throw new IllegalArgumentException(where + ": '[' at index " + i + " is inside brackets");
        }
        open = i;
      } else if (c == ']') {
        if (open < 0) {
          throw new IllegalArgumentException(where + ": ']' at index " + i + " has no '['");
        }
        open = -1;
      } else if (c == ',' && open < 0) {
        expandName(list, start, i, hosts, where);
        start = i + 1;
      }
    }
    if (open >= 0) {
      throw new IllegalArgumentException(where + ": '[' at index " + open + " is not closed");
    }
    expandName(list, start, list.length(), hosts, where);
    return hosts;
  }

  /** Appends the hosts of the name at {@code list[from, to)}, brackets balanced. */
  private static void expandName(String list, int from, int to, List<String> hosts, String where) {
    if (from == to) {
      throw new IllegalArgumentException(where + ": empty host name at index " + from);
    }
    List<String> names = List.of("");
    int i = from;
    while (i < to) {
      int open = list.indexOf('[', i);
      int textEnd = open < 0 || open > to ? to : open;
      String text = list.substring(i, textEnd);
      List<String> choices =
          textEnd == to
              ? List.of(text)
              : expandRanges(list, open + 1, list.indexOf(']', open), text, where);
      if ((long) names.size() * choices.size() + hosts.size() > MAX_NODES) {
        throw new IllegalArgumentException(
            where + ": expands to more than " + MAX_NODES + " hosts");
      }
      List<String> next = new ArrayList<>(names.size() * choices.size());
      for (String name : names) {
        for (String choice : choices) {
          next.add(name + choice);
        }
      }
      names = next;
      i = textEnd == to ? to : list.indexOf(']', open) + 1;
    }
    hosts.addAll(names);
  }

  /** {@code prefix} followed by each number of the ranges at {@code list[from, to)}. */
  private static List<String> expandRanges(
      String list, int from, int to, String prefix, String where) {
    List<String> out = new ArrayList<>();
    for (String range : list.substring(from, to).split(",", -1)) {
      Matcher m = SLURM_RANGE.matcher(range);
      if (!m.matches()) {
        throw new IllegalArgumentException(
            where + ": range=\"" + range + "\" at index " + from + " must be N or N-M");
      }
      String lowText = m.group(1);
      int low = Integer.parseInt(lowText);
      int high = m.group(2) == null ? low : Integer.parseInt(m.group(2));
      if (high < low) {
        throw new IllegalArgumentException(where + ": range=" + range + " runs high to low");
      }
      if ((long) high - low + 1 + out.size() > MAX_NODES) {
        throw new IllegalArgumentException(
            where + ": expands to more than " + MAX_NODES + " hosts");
      }
      for (int v = low; v <= high; v++) {
        String digits = Integer.toString(v);
        out.add(prefix + "0".repeat(Math.max(0, lowText.length() - digits.length())) + digits);
      }
    }
    return out;
  }
}
