package io.sluice.prefetch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.cache.NextUse;
import io.sluice.planner.DatasetLayout;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import java.util.SplittableRandom;
import java.util.function.LongFunction;
import org.junit.jupiter.api.Test;

/**
 * The claim a replan at an epoch boundary rests on: the look-ahead from epoch {@code e + 1} answers
 * every next use that the look-ahead from epoch {@code e} put in epoch {@code e + 1} with that same
 * step, so the cache keeps those keys instead of recomputing them.
 */
class NextUsesTest {
  @Test
  void theNextEpochsLookAheadKeepsEveryUseWithinTheEpochBothCover() {
    SplittableRandom rnd = new SplittableRandom(3);
    long agreed = 0;
    long changed = 0; // uses outside that epoch that the new look-ahead does answer differently
    for (String shuffle : new String[] {"global", "block", "none"}) {
      for (int[] shape : new int[][] {{1, 16, 0}, {3, 7, 0}, {4, 5, 1}, {4, 5, 3}, {2, 300, 0}}) {
        int world = shape[0];
        int batch = shape[1];
        int[] local = shape[2] == 3 ? new int[] {1, 3} : new int[] {shape[2]};
        for (boolean dropLast : new boolean[] {false, true}) {
          DatasetLayout layout = DatasetLayout.ofShards(300, 17, 400);
          LongFunction<EpochPlan> plans =
              e ->
                  EpochPlan.of(
                      GlobalSequence.of(layout, 11, e, ShuffleMode.parse(shuffle, 4)),
                      world,
                      batch,
                      dropLast);
          long steps = plans.apply(0).stepCount();
          long samples = layout.totalSamples();
          for (long base = 0; base < 3; base++) {
            NextUse old = Prefetcher.nextUses(plans, base, local, steps, samples);
            NextUse now = Prefetcher.nextUses(plans, base + 1, local, steps, samples);
            long from = (base + 1) * steps;
            long until = from + steps;
            for (int i = 0; i < 4000; i++) {
              long id = rnd.nextLong(samples);
              long q = rnd.nextLong(base * steps, until + 1);
              long k = old.nextUseStep(id, q);
              if (k >= from && k < until) {
                long epoch = base;
                assertEquals(
                    k,
                    now.nextUseStep(id, q),
                    () ->
                        shuffle
                            + " world="
                            + world
                            + " batch="
                            + batch
                            + " local="
                            + local.length
                            + " dropLast="
                            + dropLast
                            + " base="
                            + epoch
                            + " id="
                            + id
                            + " q="
                            + q);
                agreed++;
              } else if (now.nextUseStep(id, q) != k) {
                changed++;
              }
            }
          }
        }
      }
    }
    assertTrue(agreed > 50_000, "agreed=" + agreed);
    assertTrue(changed > 10_000, "changed=" + changed + ": the range is what makes them agree");
  }
}
