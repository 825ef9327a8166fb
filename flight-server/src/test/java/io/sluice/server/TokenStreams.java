package io.sluice.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.sluice.client.BatchMetadata;
import io.sluice.client.RankStream;
import io.sluice.client.SluiceClient;
import io.sluice.client.StreamRequest;
import io.sluice.demo.DemoDataset;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.UInt2Vector;
import org.apache.arrow.vector.UInt8Vector;
import org.apache.arrow.vector.complex.FixedSizeListVector;

/** Reading a demo token dataset from a daemon with the Java client, every token checked. */
final class TokenStreams {
  /** One batch as a rank saw it. */
  record Seen(BatchMetadata meta, long[] ids) {}

  private TokenStreams() {}

  /** Up to {@code max} batches of one rank's stream. */
  static List<Seen> read(
      String uri, BufferAllocator allocator, StreamRequest req, int max, int seqLen) {
    try (SluiceClient client = SluiceClient.connect(uri, allocator)) {
      return read(client, req, max, seqLen);
    }
  }

  /** Up to {@code max} batches of one rank's stream, through {@code client}. */
  static List<Seen> read(SluiceClient client, StreamRequest req, int max, int seqLen) {
    List<Seen> out = new ArrayList<>();
    try (RankStream s = client.open(req)) {
      while (out.size() < max && s.next()) {
        out.add(new Seen(s.metadata(), checkedIds(s, seqLen)));
      }
    }
    return out;
  }

  /** Reads what was already sent until the stream fails, and returns that failure. */
  static FlightRuntimeException drainToError(RankStream s) {
    return assertThrows(
        FlightRuntimeException.class,
        () -> {
          while (s.next()) {
            // drain what was already sent
          }
        });
  }

  /** Each sample id of {@code [0, n)} seen how many times over {@code batches} (padding out). */
  static int[] counts(List<Seen> batches, long n) {
    int[] c = new int[Math.toIntExact(n)];
    for (Seen b : batches) {
      for (int i = 0; i < b.ids().length - b.meta().padded(); i++) {
        c[Math.toIntExact(b.ids()[i])]++;
      }
    }
    return c;
  }

  /** Every rank of {@code base} (its rank replaced) read at once, each to the end. */
  static List<List<Seen>> readAllRanks(
      String uri, BufferAllocator allocator, StreamRequest base, int seqLen) throws Exception {
    try (ExecutorService pool = Executors.newFixedThreadPool(base.worldSize())) {
      List<Future<List<Seen>>> fs = new ArrayList<>();
      for (int r = 0; r < base.worldSize(); r++) {
        StreamRequest req = base.withRank(r);
        fs.add(pool.submit(() -> read(uri, allocator, req, Integer.MAX_VALUE, seqLen)));
      }
      List<List<Seen>> out = new ArrayList<>();
      for (Future<List<Seen>> f : fs) {
        out.add(f.get());
      }
      return out;
    }
  }

  /** The current batch's sample ids, after checking every token against its sample id. */
  static long[] checkedIds(RankStream s, int seqLen) {
    int rows = s.root().getRowCount();
    UInt8Vector idv = (UInt8Vector) s.root().getVector("sample_id");
    FixedSizeListVector tokens = (FixedSizeListVector) s.root().getVector("tokens");
    ByteBuffer data =
        ((UInt2Vector) tokens.getDataVector())
            .getDataBuffer()
            .nioBuffer(0, rows * seqLen * 2)
            .order(ByteOrder.LITTLE_ENDIAN);
    long[] ids = new long[rows];
    for (int i = 0; i < rows; i++) {
      ids[i] = idv.get(i);
      for (int j = 0; j < seqLen; j++) {
        assertEquals(
            DemoDataset.token(ids[i], j),
            data.getShort((i * seqLen + j) * 2) & 0xFFFF,
            "sample " + ids[i] + " token " + j);
      }
    }
    return ids;
  }
}
