package io.sluice.s3test;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ProtocolException;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

/**
 * An HTTP/1.1 proxy on loopback that injects faults between an S3 client and an S3 server, so that
 * tests can prove a reader retries or reports throttling, server errors, slow answers, resets and
 * short bodies instead of returning wrong data.
 *
 * <p>Each client connection carries one request. The proxy reads it whole, asks the rule set by
 * {@link #onRequest} for a {@link Fault}, forwards the request as sent over a fresh upstream
 * connection (only {@code Connection: close} replaces the client's hop-by-hop headers, which SigV4
 * does not sign, so the upstream response ends at EOF), reads the whole response, applies the
 * fault, and answers with {@code Connection: close}: HTTP/1.1 clients reconnect for the next
 * request, and the proxy never has to find where a response ends.
 *
 * <p>One virtual thread per connection; rules run on those threads, concurrently. {@link #close}
 * stops them all and closes every socket.
 */
public final class FaultProxy implements AutoCloseable {

  /** What the proxy does to one request: a {@link Kind}, and for {@link Kind#DELAY} how long. */
  public record Fault(Kind kind, long delayMs) {
    /** The kinds of fault, as counted by {@link FaultProxy#faultsInjected(Kind)}. */
    public enum Kind {
      /** Forward the request and relay the response unchanged. */
      PASS,
      /** Answer {@code 503 Slow Down}, S3's throttling error, without forwarding. */
      ERROR_503,
      /** Answer {@code 500 InternalError} without forwarding. */
      ERROR_500,
      /**
       * Answer {@code 403 AccessDenied} without forwarding: what a read-only bucket says to a PUT.
       */
      DENY_403,
      /** Forward, then wait {@code delayMs} before relaying the response. */
      DELAY,
      /** Forward, then reset the client connection (RST) before any byte of the response. */
      RESET,
      /** Forward, relay the head and half the body, then reset the client connection. */
      RESET_MID_BODY,
      /** Forward, relay the head (with its full length) and half the body, then close (FIN). */
      TRUNCATE
    }

    public static final Fault PASS = new Fault(Kind.PASS, 0);
    public static final Fault ERROR_503 = new Fault(Kind.ERROR_503, 0);
    public static final Fault ERROR_500 = new Fault(Kind.ERROR_500, 0);
    public static final Fault DENY_403 = new Fault(Kind.DENY_403, 0);
    public static final Fault RESET = new Fault(Kind.RESET, 0);
    public static final Fault RESET_MID_BODY = new Fault(Kind.RESET_MID_BODY, 0);
    public static final Fault TRUNCATE = new Fault(Kind.TRUNCATE, 0);

    /** Rejects a negative delay, and a delay on any kind but {@link Kind#DELAY}. */
    public Fault {
      Objects.requireNonNull(kind, "kind");
      if (delayMs < 0) {
        throw new IllegalArgumentException("delayMs=" + delayMs + " must be >= 0");
      }
      if (delayMs > 0 && kind != Kind.DELAY) {
        throw new IllegalArgumentException("delayMs=" + delayMs + " applies only to kind=DELAY");
      }
    }

    /** Forward, then relay the response after {@code delayMs}. */
    public static Fault delay(long delayMs) {
      return new Fault(Kind.DELAY, delayMs);
    }
  }

  /**
   * What a rule sees of a request.
   *
   * @param sequence the request's number on this proxy, from 1
   * @param target the request target: path and query, as sent
   * @param headers header values by lower-case name
   */
  public record RequestInfo(
      long sequence, String method, String target, Map<String, String> headers) {
    /** A header's value, by case-insensitive name. */
    public Optional<String> header(String name) {
      return Optional.ofNullable(headers.get(name.toLowerCase(Locale.ROOT)));
    }

    /** Whether this is a GET with a {@code Range} header: how S3 readers fetch parts. */
    public boolean isRangedGet() {
      return method.equals("GET") && headers.containsKey("range");
    }
  }

  private static final String HOST = "127.0.0.1";
  private static final int MAX_LINE_BYTES = 16 * 1024;
  private static final int MAX_HEADER_LINES = 200;
  private static final int UPSTREAM_TIMEOUT_MS = 30_000;
  private static final int DRAIN_TIMEOUT_MS = 5_000;

  private final InetSocketAddress upstream;
  private final ServerSocket server;
  private final ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor();
  private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
  private final AtomicLong requests = new AtomicLong();
  private final Map<Fault.Kind, AtomicLong> faults = new EnumMap<>(Fault.Kind.class);
  private volatile Function<RequestInfo, Fault> rule = request -> Fault.PASS;

  private FaultProxy(InetSocketAddress upstream, ServerSocket server) {
    this.upstream = upstream;
    this.server = server;
    for (Fault.Kind kind : Fault.Kind.values()) {
      faults.put(kind, new AtomicLong());
    }
  }

  /**
   * Starts a proxy on a free loopback port in front of {@code upstream} (its host and port),
   * passing every request until a rule is set.
   */
  public static FaultProxy start(URI upstream) throws IOException {
    ServerSocket server = new ServerSocket(0, 64, InetAddress.getByName(HOST));
    FaultProxy proxy =
        new FaultProxy(new InetSocketAddress(upstream.getHost(), upstream.getPort()), server);
    proxy.threads.execute(proxy::accept);
    return proxy;
  }

  /** The proxy's base address, {@code http://127.0.0.1:<port>}: a client's endpoint override. */
  public URI endpoint() {
    return URI.create("http://" + HOST + ":" + server.getLocalPort());
  }

  /** Sets the rule that picks each request's fault; it must be thread-safe. */
  public void onRequest(Function<RequestInfo, Fault> rule) {
    this.rule = Objects.requireNonNull(rule, "rule");
  }

  /**
   * Gives {@code fault} to every {@code n}th request whose method is {@code method} (every method
   * when null), counting from when this is called; the rest pass.
   */
  public void faultEveryNth(int n, Fault fault, String method) {
    if (n < 1) {
      throw new IllegalArgumentException("n=" + n + " must be >= 1");
    }
    AtomicLong matching = new AtomicLong();
    onRequest(
        request ->
            (method == null || request.method().equals(method))
                    && matching.incrementAndGet() % n == 0
                ? fault
                : Fault.PASS);
  }

  /**
   * Gives each ranged GET, with {@code probability}, a fault drawn evenly from {@code choices}; the
   * rest pass. The same seed makes the same draws, in the order requests arrive.
   */
  public void randomFaults(long seed, double probability, Fault... choices) {
    if (!(probability >= 0 && probability <= 1)) {
      throw new IllegalArgumentException("probability=" + probability + " must be in [0, 1]");
    }
    if (choices.length == 0) {
      throw new IllegalArgumentException("choices must name at least one fault");
    }
    List<Fault> faultChoices = List.of(choices);
    Random random = new Random(seed);
    onRequest(
        request -> {
          if (!request.isRangedGet()) {
            return Fault.PASS;
          }
          synchronized (random) {
            return random.nextDouble() < probability
                ? faultChoices.get(random.nextInt(faultChoices.size()))
                : Fault.PASS;
          }
        });
  }

  /** How many requests the proxy has read. */
  public long requests() {
    return requests.get();
  }

  /** How many requests got a fault of this kind ({@link Fault.Kind#PASS} counts passed ones). */
  public long faultsInjected(Fault.Kind kind) {
    return faults.get(kind).get();
  }

  /** How many requests got a fault other than {@link Fault.Kind#PASS}. */
  public long faultsInjected() {
    return faults.entrySet().stream()
        .filter(e -> e.getKey() != Fault.Kind.PASS)
        .mapToLong(e -> e.getValue().get())
        .sum();
  }

  /** Stops accepting, closes every client and upstream connection and waits for their threads. */
  @Override
  public void close() {
    closeQuietly(server);
    threads.shutdownNow();
    sockets.forEach(FaultProxy::closeQuietly);
    threads.close();
  }

  private void accept() {
    while (true) {
      Socket client;
      try {
        client = server.accept();
      } catch (IOException closed) {
        return;
      }
      sockets.add(client);
      try {
        threads.execute(() -> serve(client));
      } catch (RejectedExecutionException closing) {
        closeQuietly(client);
        return;
      }
    }
  }

  private void serve(Socket client) {
    try {
      InputStream in = new BufferedInputStream(client.getInputStream());
      OutputStream out = new BufferedOutputStream(client.getOutputStream());
      Request request = Request.readHead(in);
      if (request == null) {
        return;
      }
      Fault fault = choose(request);
      byte[] body = request.readBody(in, out);
      switch (fault.kind()) {
        case PASS -> forward(request, body).writeTo(out);
        case ERROR_503 ->
            Response.s3Error(
                    request, 503, "Slow Down", "SlowDown", "Please reduce your request rate.")
                .writeTo(out);
        case ERROR_500 ->
            Response.s3Error(
                    request,
                    500,
                    "Internal Server Error",
                    "InternalError",
                    "We encountered an internal error. Please try again.")
                .writeTo(out);
        case DENY_403 ->
            Response.s3Error(request, 403, "Forbidden", "AccessDenied", "Access Denied")
                .writeTo(out);
        case DELAY -> {
          Response response = forward(request, body);
          Thread.sleep(fault.delayMs());
          response.writeTo(out);
        }
        case RESET -> {
          forward(request, body);
          reset(client);
          return;
        }
        case RESET_MID_BODY -> {
          forward(request, body).writeHalfTo(out);
          reset(client);
          return;
        }
        case TRUNCATE -> forward(request, body).writeHalfTo(out);
      }
      closeGracefully(client, in);
    } catch (IOException | InterruptedException e) {
      // The client went away, or close() stopped this connection: nobody is left to answer.
    } finally {
      sockets.remove(client);
      closeQuietly(client);
    }
  }

  private Fault choose(Request request) {
    long sequence = requests.incrementAndGet();
    RequestInfo info =
        new RequestInfo(sequence, request.method(), request.target(), request.headers());
    Fault fault =
        Objects.requireNonNull(rule.apply(info), () -> "rule gave no fault for request=" + info);
    faults.get(fault.kind()).incrementAndGet();
    return fault;
  }

  private Response forward(Request request, byte[] body) {
    Socket socket = new Socket();
    sockets.add(socket);
    IOException writeFailure = null;
    try (socket) {
      socket.connect(upstream, UPSTREAM_TIMEOUT_MS);
      socket.setSoTimeout(UPSTREAM_TIMEOUT_MS);
      OutputStream out = new BufferedOutputStream(socket.getOutputStream());
      try {
        out.write(encodeHead(request.requestLine(), request.headerLines()));
        out.write(body);
        out.flush();
      } catch (IOException e) {
        // A server that rejects a request may answer before the body is in, and close: relay that.
        writeFailure = e;
      }
      return Response.parse(socket.getInputStream().readAllBytes());
    } catch (IOException e) {
      if (writeFailure != null) {
        e.addSuppressed(writeFailure);
      }
      return Response.badGateway(upstream, e);
    } finally {
      sockets.remove(socket);
    }
  }

  // Closing a socket with unread input sends RST, which can destroy the response before the client
  // has read it: send FIN first, then wait for the client's.
  private static void closeGracefully(Socket client, InputStream in) throws IOException {
    client.shutdownOutput();
    client.setSoTimeout(DRAIN_TIMEOUT_MS);
    in.transferTo(OutputStream.nullOutputStream());
  }

  private static void reset(Socket client) throws IOException {
    client.setSoLinger(true, 0);
    client.close();
  }

  private static void closeQuietly(AutoCloseable socket) {
    try {
      socket.close();
    } catch (Exception e) {
      // Closing is all that is left to do with it; a failure to close changes nothing.
    }
  }

  /** A start line and header lines as sent, less hop-by-hop headers, plus Connection: close. */
  private static byte[] encodeHead(String startLine, List<String> headerLines) {
    StringBuilder head = new StringBuilder(startLine).append("\r\n");
    for (String line : headerLines) {
      String name = headerName(line);
      if (!name.equalsIgnoreCase("connection") && !name.equalsIgnoreCase("keep-alive")) {
        head.append(line).append("\r\n");
      }
    }
    return head.append("Connection: close\r\n\r\n").toString().getBytes(ISO_8859_1);
  }

  private static String headerName(String line) {
    int colon = line.indexOf(':');
    return colon < 0 ? "" : line.substring(0, colon).strip();
  }

  /** A line ending in CRLF (or LF), without it; null at EOF before its first byte. */
  private static String readLine(InputStream in) throws IOException {
    StringBuilder line = new StringBuilder();
    for (int b; (b = in.read()) != -1; ) {
      if (b == '\n') {
        int end = line.length();
        if (end > 0 && line.charAt(end - 1) == '\r') {
          line.setLength(end - 1);
        }
        return line.toString();
      }
      if (line.length() == MAX_LINE_BYTES) {
        throw new ProtocolException("line longer than " + MAX_LINE_BYTES + " bytes");
      }
      line.append((char) b);
    }
    if (line.isEmpty()) {
      return null;
    }
    throw new EOFException("connection closed mid-line: line=" + line);
  }

  private static String requireLine(InputStream in) throws IOException {
    String line = readLine(in);
    if (line == null) {
      throw new EOFException("connection closed mid-request");
    }
    return line;
  }

  /** One request's head as the client sent it. */
  private record Request(
      String method,
      String target,
      String requestLine,
      List<String> headerLines,
      Map<String, String> headers) {

    /** The next request's head, or null if the client closed the connection first. */
    static Request readHead(InputStream in) throws IOException {
      String requestLine = readLine(in);
      if (requestLine == null) {
        return null;
      }
      String[] parts = requestLine.split(" ");
      if (parts.length != 3) {
        throw new ProtocolException("bad request line: " + requestLine);
      }
      List<String> lines = new ArrayList<>();
      Map<String, String> headers = new HashMap<>();
      for (String line = requireLine(in); !line.isEmpty(); line = requireLine(in)) {
        String name = headerName(line);
        if (name.isEmpty() || lines.size() == MAX_HEADER_LINES) {
          throw new ProtocolException("bad or too many header lines: line=" + line);
        }
        lines.add(line);
        headers.put(name.toLowerCase(Locale.ROOT), line.substring(line.indexOf(':') + 1).strip());
      }
      return new Request(parts[0], parts[1], requestLine, List.copyOf(lines), Map.copyOf(headers));
    }

    /**
     * The body as framed on the wire (chunk framing included), after answering {@code Expect:
     * 100-continue}. The header stays in what is forwarded: it may be signed.
     */
    byte[] readBody(InputStream in, OutputStream out) throws IOException {
      if ("100-continue".equalsIgnoreCase(headers.get("expect"))) {
        out.write("HTTP/1.1 100 Continue\r\n\r\n".getBytes(ISO_8859_1));
        out.flush();
      }
      String transferEncoding = headers.getOrDefault("transfer-encoding", "");
      if (transferEncoding.toLowerCase(Locale.ROOT).contains("chunked")) {
        return readChunked(in);
      }
      String contentLength = headers.get("content-length");
      if (contentLength == null) {
        return new byte[0];
      }
      int length;
      try {
        length = Integer.parseInt(contentLength);
      } catch (NumberFormatException e) {
        throw new ProtocolException("bad Content-Length: " + contentLength);
      }
      byte[] body = in.readNBytes(length);
      if (body.length < length) {
        throw new EOFException(
            "body ended early: lengthBytes=" + body.length + " contentLength=" + length);
      }
      return body;
    }

    private static byte[] readChunked(InputStream in) throws IOException {
      ByteArrayOutputStream raw = new ByteArrayOutputStream();
      for (int size = -1; size != 0; ) {
        String sizeLine = requireLine(in);
        raw.writeBytes((sizeLine + "\r\n").getBytes(ISO_8859_1));
        int extension = sizeLine.indexOf(';');
        String hex = (extension < 0 ? sizeLine : sizeLine.substring(0, extension)).strip();
        try {
          size = Integer.parseInt(hex, 16);
        } catch (NumberFormatException e) {
          throw new ProtocolException("bad chunk size line: " + sizeLine);
        }
        if (size > 0) {
          byte[] chunk = in.readNBytes(size + 2); // the data and its CRLF
          if (chunk.length < size + 2) {
            throw new EOFException("chunk ended early: chunkBytes=" + size);
          }
          raw.writeBytes(chunk);
        }
      }
      for (String trailer = requireLine(in); !trailer.isEmpty(); trailer = requireLine(in)) {
        raw.writeBytes((trailer + "\r\n").getBytes(ISO_8859_1));
      }
      raw.writeBytes("\r\n".getBytes(ISO_8859_1));
      return raw.toByteArray();
    }
  }

  /** A whole response: its head lines and its body bytes as framed on the wire. */
  private record Response(String statusLine, List<String> headerLines, byte[] body) {

    /** Parses what the upstream sent before EOF, skipping interim (1xx) responses. */
    static Response parse(byte[] raw) throws IOException {
      int start = 0;
      while (true) {
        int end = indexOfBlankLine(raw, start);
        if (end < 0) {
          throw new ProtocolException(
              "upstream response has no complete head: lengthBytes=" + raw.length);
        }
        List<String> lines = List.of(new String(raw, start, end - start, ISO_8859_1).split("\r\n"));
        String statusLine = lines.getFirst();
        int bodyStart = end + 4;
        if (!statusLine.startsWith("HTTP/1.1 1") || statusLine.startsWith("HTTP/1.1 101")) {
          List<String> headers = new ArrayList<>(lines.subList(1, lines.size()));
          byte[] body = Arrays.copyOfRange(raw, bodyStart, raw.length);
          boolean framed =
              headers.stream()
                  .map(FaultProxy::headerName)
                  .anyMatch(
                      n ->
                          n.equalsIgnoreCase("content-length")
                              || n.equalsIgnoreCase("transfer-encoding"));
          if (!framed) {
            // Asked with Connection: close, the server may end the body by closing; the client
            // (the CRT's HTTP) wants it framed, as the server would have framed it otherwise.
            headers.add("Content-Length: " + body.length);
          }
          return new Response(statusLine, List.copyOf(headers), body);
        }
        start = bodyStart;
      }
    }

    static Response s3Error(
        Request request, int status, String reason, String code, String message) {
      byte[] xml =
          ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
                  + code
                  + "</Code><Message>"
                  + message
                  + "</Message><RequestId>fault-proxy</RequestId></Error>")
              .getBytes(UTF_8);
      return new Response(
          "HTTP/1.1 " + status + " " + reason,
          List.of("Content-Type: application/xml", "Content-Length: " + xml.length),
          request.method().equals("HEAD") ? new byte[0] : xml);
    }

    static Response badGateway(InetSocketAddress upstream, IOException cause) {
      byte[] text = ("upstream=" + upstream + " failed: " + cause).getBytes(UTF_8);
      return new Response(
          "HTTP/1.1 502 Bad Gateway",
          List.of("Content-Type: text/plain; charset=utf-8", "Content-Length: " + text.length),
          text);
    }

    void writeTo(OutputStream out) throws IOException {
      write(out, body.length);
    }

    /** The head as is (its Content-Length still promising the whole body), then half the body. */
    void writeHalfTo(OutputStream out) throws IOException {
      write(out, body.length / 2);
    }

    private void write(OutputStream out, int bodyBytes) throws IOException {
      out.write(encodeHead(statusLine, headerLines));
      out.write(body, 0, bodyBytes);
      out.flush();
    }

    private static int indexOfBlankLine(byte[] raw, int from) {
      for (int i = from; i + 3 < raw.length; i++) {
        if (raw[i] == '\r' && raw[i + 1] == '\n' && raw[i + 2] == '\r' && raw[i + 3] == '\n') {
          return i;
        }
      }
      return -1;
    }
  }
}
