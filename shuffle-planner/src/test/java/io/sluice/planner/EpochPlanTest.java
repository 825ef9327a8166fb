package io.sluice.planner;

import static io.sluice.planner.DatasetLayoutTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class EpochPlanTest {

  @Test
  void theUnionOverRanksIsEverySampleExactlyOnce() {
    SplittableRandom random = new SplittableRandom(51);
    for (int c = 0; c < 400; c++) {
      DatasetLayout layout = Cases.randomLayout(random, 12, random.nextBoolean() ? 5 : 80);
      ShuffleMode mode = Cases.randomMode(random);
      GlobalSequence sequence =
          GlobalSequence.of(layout, random.nextLong(), random.nextInt(3), mode);
      int world = 1 + random.nextInt(9);
      int batch = 1 + random.nextInt(random.nextBoolean() ? 4 : 40);
      boolean dropLast = random.nextBoolean();
      assertExactlyOnce(EpochPlan.of(sequence, world, batch, dropLast));
    }
  }

  @Test
  void globalBatchLargerThanTheDatasetPadsByWrappingOrDropsEverything() {
    GlobalSequence sequence =
        GlobalSequence.of(DatasetLayout.ofCount(3), 1, 0, new ShuffleMode.Global());
    EpochPlan padded = EpochPlan.of(sequence, 4, 5, false);
    assertEquals(1, padded.stepCount());
    assertEquals(20, padded.epochLength());
    assertExactlyOnce(padded);
    EpochPlan dropped = EpochPlan.of(sequence, 4, 5, true);
    assertEquals(0, dropped.stepCount());
    assertEquals(0, dropped.epochLength());
    assertEquals(0, dropped.stepAtCursor(0));
  }

  private static void assertExactlyOnce(EpochPlan plan) {
    GlobalSequence sequence = plan.sequence();
    long n = sequence.size();
    long g = plan.globalBatch();
    String context = plan.toString();
    assertEquals(plan.dropLast() ? n / g : (n + g - 1) / g, plan.stepCount(), context);
    int[] seen = new int[(int) n];
    int[] paddedSeen = new int[(int) n];
    long[] ids = new long[plan.batchSize()];
    boolean[] padded = new boolean[plan.batchSize()];
    long batches = 0;
    for (int rank = 0; rank < plan.worldSize(); rank++) {
      for (long step = 0; step < plan.stepCount(); step++) {
        plan.fill(rank, step, ids, padded);
        assertArrayEquals(ids, plan.batch(rank, step), context);
        batches++;
        for (int i = 0; i < ids.length; i++) {
          long position = plan.positionOf(rank, step, i);
          assertEquals(step * g + (long) rank * plan.batchSize() + i, position, context);
          assertEquals(position >= n, padded[i], context + " padded at position=" + position);
          assertEquals(position >= n, plan.isPadding(position), context);
          assertEquals(rank, plan.rankOf(position), context);
          assertEquals(sequence.sampleAt(position % n), ids[i], context + " position=" + position);
          if (padded[i]) {
            paddedSeen[(int) ids[i]]++;
          } else {
            seen[(int) ids[i]]++;
          }
        }
      }
    }
    assertEquals(plan.stepCount() * plan.worldSize(), batches, context);
    long kept = plan.dropLast() ? n - n % g : n;
    long once = 0;
    for (int id = 0; id < n; id++) {
      assertTrue(seen[id] <= 1, context + " sampleId=" + id + " seen " + seen[id] + " times");
      once += seen[id];
    }
    assertEquals(kept, once, context + " distinct unpadded samples");
    if (plan.dropLast()) {
      assertEquals(0, java.util.Arrays.stream(paddedSeen).sum(), context);
    } else {
      // Padded copies are exactly the wrapped positions N .. epochLength-1 -> (p - N) mod N.
      int[] expected = new int[(int) n];
      for (long p = n; p < plan.epochLength(); p++) {
        expected[(int) sequence.sampleAt((p - n) % n)]++;
      }
      assertArrayEquals(expected, paddedSeen, context);
    }
  }

  @Test
  void resumingWithAnyWorldSizeThatKeepsGReproducesTheSequence() {
    SplittableRandom random = new SplittableRandom(61);
    int[] globalBatches = {12, 24, 36, 60, 64};
    for (int c = 0; c < 300; c++) {
      int g = globalBatches[random.nextInt(globalBatches.length)];
      DatasetLayout layout = Cases.randomLayout(random, 10, 60);
      GlobalSequence sequence =
          GlobalSequence.of(layout, random.nextLong(), 1, Cases.randomMode(random));
      boolean dropLast = random.nextBoolean();
      int world = randomDivisor(random, g);
      EpochPlan before = EpochPlan.of(sequence, world, g / world, dropLast);
      if (before.stepCount() == 0) {
        continue;
      }
      long step = random.nextLong(before.stepCount());
      long cursor = step == 0 ? 0 : before.cursorAfter(step - 1);
      int newWorld = randomDivisor(random, g);
      EpochPlan after = EpochPlan.of(sequence, newWorld, g / newWorld, dropLast);
      assertEquals(before.stepCount(), after.stepCount());
      long resumeAt = after.stepAtCursor(cursor);
      assertEquals(step, resumeAt);
      assertEquals(
          globalOrder(before, step), globalOrder(after, resumeAt), before + " -> " + after);
    }
  }

  @Test
  void resumingWithANewGlobalBatchContinuesFromTheCursorPosition() {
    SplittableRandom random = new SplittableRandom(71);
    for (int c = 0; c < 200; c++) {
      DatasetLayout layout = Cases.randomLayout(random, 10, 80);
      GlobalSequence sequence =
          GlobalSequence.of(layout, random.nextLong(), 0, Cases.randomMode(random));
      // G = 4 * 6 = 24 before, G' = 2 * 4 = 8 or 3 * 16 = 48 after: cursors that are multiples of
      // both are legal resume points.
      EpochPlan before = EpochPlan.of(sequence, 4, 6, false);
      EpochPlan after =
          random.nextBoolean()
              ? EpochPlan.of(sequence, 2, 4, false)
              : EpochPlan.of(sequence, 3, 16, false);
      long lcm = after.globalBatch() == 8 ? 24 : 48;
      long cursor = lcm * random.nextLong(sequence.size() / lcm + 1);
      if (cursor > before.epochLength() || cursor > after.epochLength()) {
        continue;
      }
      long resumed = after.stepAtCursor(cursor);
      List<Long> rest = globalOrder(after, resumed);
      // The new plan serves sequence positions cursor, cursor+1, ... (wrapping as padding).
      for (int i = 0; i < rest.size(); i++) {
        long position = cursor + i;
        assertEquals(
            sequence.sampleAt(position % sequence.size()), rest.get(i), after + " at " + position);
      }
      // Unpadded positions agree with what the old plan would have served from the cursor.
      List<Long> old = globalOrder(before, before.stepAtCursor(cursor));
      int common =
          (int) Math.max(0, Math.min(sequence.size() - cursor, Math.min(old.size(), rest.size())));
      assertEquals(old.subList(0, common), rest.subList(0, common));
    }
    EpochPlan plan =
        EpochPlan.of(
            GlobalSequence.of(DatasetLayout.ofCount(100), 0, 0, new ShuffleMode.None()),
            2,
            4,
            false);
    assertMessage(
        "start_cursor=12 must be a multiple of global batch G=8 in [0, epochLength=104]",
        () -> plan.stepAtCursor(12));
  }

  /** Every rank's batches from {@code fromStep}, in global position order. */
  private static List<Long> globalOrder(EpochPlan plan, long fromStep) {
    List<Long> out = new ArrayList<>();
    for (long step = fromStep; step < plan.stepCount(); step++) {
      for (int rank = 0; rank < plan.worldSize(); rank++) {
        for (long id : plan.batch(rank, step)) {
          out.add(id);
        }
      }
    }
    return out;
  }

  private static int randomDivisor(SplittableRandom random, int g) {
    while (true) {
      int d = 1 + random.nextInt(g);
      if (g % d == 0) {
        return d;
      }
    }
  }

  @Test
  void cursorsCountGlobalPositions() {
    GlobalSequence sequence =
        GlobalSequence.of(DatasetLayout.ofCount(1000), 3, 0, new ShuffleMode.Block(4));
    EpochPlan plan = EpochPlan.of(sequence, 8, 16, false);
    assertEquals(128, plan.globalBatch());
    assertEquals(8, plan.stepCount());
    assertEquals(1024, plan.epochLength());
    assertEquals(128, plan.cursorAfter(0));
    assertEquals(1024, plan.cursorAfter(7));
    for (long step = 0; step < plan.stepCount(); step++) {
      assertEquals(step + 1, plan.stepAtCursor(plan.cursorAfter(step)));
    }
    assertEquals(plan.stepCount(), plan.stepAtCursor(plan.epochLength()));
    EpochPlan dropping = EpochPlan.of(sequence, 8, 16, true);
    assertEquals(7, dropping.stepCount());
    assertEquals(896, dropping.epochLength());
  }

  @Test
  void rejectsBadArgumentsNamingFieldAndValue() {
    GlobalSequence sequence =
        GlobalSequence.of(DatasetLayout.ofCount(100), 0, 0, new ShuffleMode.Global());
    assertMessage("world_size=0 must be >= 1", () -> EpochPlan.of(sequence, 0, 4, false));
    assertMessage("batch_size=-1 must be >= 1", () -> EpochPlan.of(sequence, 2, -1, false));
    assertMessage("sequence=null must be non-null", () -> EpochPlan.of(null, 2, 1, false));
    EpochPlan plan = EpochPlan.of(sequence, 2, 4, true);
    assertMessage("rank=2 must be in [0, world_size=2)", () -> plan.batch(2, 0));
    assertMessage("step=12 must be in [0, stepCount=12)", () -> plan.batch(0, 12));
    assertMessage("step=-1 must be in [0, stepCount=12)", () -> plan.cursorAfter(-1));
    assertMessage("index=4 must be in [0, batch_size=4)", () -> plan.positionOf(0, 0, 4));
    assertMessage(
        "sampleIds.length=3 must be batch_size=4", () -> plan.fill(0, 0, new long[3], null));
    assertMessage(
        "padded.length=5 must be batch_size=4", () -> plan.fill(0, 0, new long[4], new boolean[5]));
    assertMessage(
        "start_cursor=4 must be a multiple of global batch G=8 in [0, epochLength=96]",
        () -> plan.stepAtCursor(4));
    assertMessage(
        "start_cursor=104 must be a multiple of global batch G=8 in [0, epochLength=96]",
        () -> plan.stepAtCursor(104));
    assertMessage(
        "start_cursor=-8 must be a multiple of global batch G=8 in [0, epochLength=96]",
        () -> plan.stepAtCursor(-8));
    assertMessage("position=96 must be in [0, epochLength=96)", () -> plan.isPadding(96));
  }
}
