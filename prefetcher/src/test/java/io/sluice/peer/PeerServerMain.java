package io.sluice.peer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * A peer server holding synthetic samples, for tests that need one in another network namespace:
 * {@code PeerServerMain TRANSPORT SAMPLES SAMPLE_BYTES HOST:PORT...}. Sample {@code id}'s byte
 * {@code i} is {@link PeerTransportConformance#pattern}. Prints {@code serving} when ready and runs
 * until its standard input closes.
 */
public final class PeerServerMain {
  private PeerServerMain() {}

  public static void main(String[] args) throws Exception {
    String transportName = args[0];
    int samples = Integer.parseInt(args[1]);
    int sampleBytes = Integer.parseInt(args[2]);
    Arena arena = Arena.ofShared();
    MemorySegment[] held = new MemorySegment[samples];
    for (int id = 0; id < samples; id++) {
      held[id] = arena.allocate(sampleBytes);
      for (int i = 0; i < sampleBytes; i++) {
        held[id].set(ValueLayout.JAVA_BYTE, i, PeerTransportConformance.pattern(id, i));
      }
    }
    HeldSamples source =
        (dataset, id) ->
            id < 0 || id >= samples
                ? null
                : new HeldSamples.Lease() {
                  @Override
                  public MemorySegment bytes() {
                    return held[(int) id];
                  }

                  @Override
                  public void close() {}
                };
    try (PeerTransport transport = PeerTransports.open(transportName, 30_000)) {
      List<PeerServer> servers = new ArrayList<>();
      for (int i = 3; i < args.length; i++) {
        String[] hp = args[i].split(":");
        servers.add(transport.serve(new InetSocketAddress(hp[0], Integer.parseInt(hp[1])), source));
      }
      System.out.println("serving " + servers.stream().map(PeerServer::address).toList());
      System.out.flush();
      while (System.in.read() >= 0) {
        // until the test closes our input
      }
      for (PeerServer s : servers) {
        s.close();
      }
    }
  }
}
