package io.sluice.planner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class DatasetLayoutTest {

  @Test
  void shardsMapToContiguousIdRanges() {
    DatasetLayout layout = DatasetLayout.ofShards(3, 0, 0, 5, 1);
    assertEquals(9, layout.totalSamples());
    assertEquals(5, layout.shardCount());
    assertEquals(0, layout.firstSampleOf(0));
    assertEquals(3, layout.firstSampleOf(1));
    assertEquals(3, layout.firstSampleOf(3));
    assertEquals(8, layout.firstSampleOf(4));
    assertEquals(0, layout.shardSampleCount(2));
    int[] expected = {0, 0, 0, 3, 3, 3, 3, 3, 4};
    for (int id = 0; id < expected.length; id++) {
      assertEquals(expected[id], layout.shardOf(id), "sampleId=" + id);
    }
  }

  @Test
  void shardOfMatchesLinearScanOnRandomLayouts() {
    SplittableRandom random = new SplittableRandom(11);
    for (int c = 0; c < 200; c++) {
      DatasetLayout layout = Cases.randomLayout(random, 30, 7);
      int shard = 0;
      for (long id = 0; id < layout.totalSamples(); id++) {
        while (id >= layout.firstSampleOf(shard) + layout.shardSampleCount(shard)) {
          shard++;
        }
        assertEquals(shard, layout.shardOf(id), layout + " sampleId=" + id);
      }
    }
  }

  @Test
  void ofShardsCopiesItsArgument() {
    long[] counts = {4, 5};
    DatasetLayout layout = DatasetLayout.ofShards(counts);
    counts[0] = 100;
    assertEquals(9, layout.totalSamples());
    assertEquals(DatasetLayout.ofShards(4, 5), layout);
  }

  @Test
  void ofCountIsOneShard() {
    DatasetLayout layout = DatasetLayout.ofCount(10_000_000_000L);
    assertEquals(1, layout.shardCount());
    assertEquals(10_000_000_000L, layout.totalSamples());
    assertEquals(0, layout.shardOf(9_999_999_999L));
  }

  @Test
  void rejectsBadArgumentsNamingFieldAndValue() {
    assertMessage("shard=1 sampleCount=-2 must be >= 0", () -> DatasetLayout.ofShards(3, -2));
    assertMessage("totalSamples=0 must be >= 1", () -> DatasetLayout.ofShards(0, 0));
    assertMessage("shardCount=0 must be >= 1", () -> DatasetLayout.ofShards());
    assertMessage(
        "samples=0 must be in [1, " + DatasetLayout.MAX_SAMPLES + "]",
        () -> DatasetLayout.ofCount(0));
    assertThrows(IllegalArgumentException.class, () -> DatasetLayout.ofShards(1L << 62, 1L << 62));
    assertThrows(IllegalArgumentException.class, () -> DatasetLayout.ofShards(Long.MAX_VALUE, 5));
    DatasetLayout layout = DatasetLayout.ofShards(2, 3);
    assertMessage("sampleId=5 must be in [0, totalSamples=5)", () -> layout.shardOf(5));
    assertMessage("sampleId=-1 must be in [0, totalSamples=5)", () -> layout.shardOf(-1));
    assertMessage("shard=2 must be in [0, shardCount=2)", () -> layout.firstSampleOf(2));
  }

  static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
    assertEquals(expected, e.getMessage());
  }
}
