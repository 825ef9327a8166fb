package io.sluice.peer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.sluice.planner.DatasetLayout;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import java.net.ServerSocket;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongFunction;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The placement every daemon computes on its own: checked against a brute-force walk of the plan
 * (every rank's every batch), for several node counts, world sizes and drop_last.
 */
class PeerGroupTest {
  private static final long N = 1003; // not a multiple of anything below: padding or a dropped tail

  private static LongFunction<EpochPlan> plans(int world, int batch, boolean dropLast) {
    DatasetLayout layout = DatasetLayout.ofShards(400, 603);
    Map<Long, EpochPlan> cache = new ConcurrentHashMap<>();
    return epoch ->
        cache.computeIfAbsent(
            epoch,
            e ->
                EpochPlan.of(
                    GlobalSequence.of(layout, 17, e, ShuffleMode.parse("global", 2)),
                    world,
                    batch,
                    dropLast));
  }

  /** The node that first takes each sample in {@code plan}, or -1; and the step it does. */
  private static int[] consumers(EpochPlan plan, int nodes, long[] stepOf) {
    int[] node = new int[(int) N];
    Arrays.fill(node, -1);
    Arrays.fill(stepOf, -1);
    int perNode = plan.worldSize() / nodes;
    for (long step = 0; step < plan.stepCount(); step++) {
      for (int rank = 0; rank < plan.worldSize(); rank++) {
        for (long id : plan.batch(rank, step)) {
          if (node[(int) id] < 0) {
            node[(int) id] = rank / perNode;
            stepOf[(int) id] = step;
          }
        }
      }
    }
    return node;
  }

  @ParameterizedTest
  @CsvSource({"2,2,8,false", "3,6,16,false", "3,6,16,true", "4,8,5,false", "2,4,7,true"})
  void holdersAndLoansMatchAWalkOfThePlan(int nodes, int world, int batch, boolean dropLast)
      throws Exception {
    LongFunction<EpochPlan> plans = plans(world, batch, dropLast);
    StringBuilder spec = new StringBuilder();
    for (int i = 0; i < nodes; i++) {
      try (ServerSocket s = new ServerSocket(0)) {
        spec.append(i == 0 ? "" : ",").append("127.0.0.1:").append(s.getLocalPort());
      }
    }
    for (int self = 0; self < nodes; self++) {
      try (PeerGroup g =
          PeerGroup.start(
              PeerTopology.parse(spec.toString(), self, 8816),
              TcpTransport.create(1),
              HeldSamples.NONE,
              PeerGroup.Settings.defaults())) {
        PeerSource source = g.sourceFor("d", plans);
        long[] step0 = new long[(int) N];
        long[] step1 = new long[(int) N];
        int[] epoch0 = consumers(plans.apply(0), nodes, step0);
        int[] epoch1 = consumers(plans.apply(1), nodes, step1);
        for (long id = 0; id < N; id++) {
          int i = (int) id;
          assertEquals(-1, source.holderOf(id, 0), "nobody holds anything in epoch 0");
          int expectHolder = epoch0[i] == self ? -1 : epoch0[i];
          assertEquals(
              expectHolder, source.holderOf(id, 1), "holder of " + id + " at node " + self);
          long expectLent =
              epoch0[i] == self && epoch1[i] >= 0 && epoch1[i] != self ? step1[i] : -1;
          assertEquals(expectLent, source.lentAtStep(id, 0), "loan of " + id + " at node " + self);
        }
      }
    }
  }

  @ParameterizedTest
  @CsvSource({"3,4", "2,1"})
  void aWorldThatDoesNotSplitOverTheNodesReadsFromStorage(int nodes, int world) throws Exception {
    StringBuilder spec = new StringBuilder();
    for (int i = 0; i < nodes; i++) {
      try (ServerSocket s = new ServerSocket(0)) {
        spec.append(i == 0 ? "" : ",").append("127.0.0.1:").append(s.getLocalPort());
      }
    }
    try (PeerGroup g =
        PeerGroup.start(
            PeerTopology.parse(spec.toString(), 0, 8816),
            TcpTransport.create(1),
            HeldSamples.NONE,
            PeerGroup.Settings.defaults())) {
      assertNull(g.sourceFor("d", plans(world, 4, false)));
    }
  }
}
