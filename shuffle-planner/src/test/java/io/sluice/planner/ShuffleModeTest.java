package io.sluice.planner;

import static io.sluice.planner.DatasetLayoutTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class ShuffleModeTest {

  @Test
  void parsesEveryWireNameBack() {
    for (ShuffleMode mode : Cases.allModes()) {
      int k = mode instanceof ShuffleMode.Block b ? b.shardsPerBlock() : 0;
      assertEquals(mode, ShuffleMode.parse(mode.wireName(), k));
    }
    assertEquals(new ShuffleMode.Block(7), ShuffleMode.parse("block", 7));
    assertEquals("block", new ShuffleMode.Block(2).wireName());
    assertEquals(new ShuffleMode.Global(), ShuffleMode.parse("global", -5));
  }

  @Test
  void rejectsBadNamesAndBlockSizes() {
    assertMessage(
        "shuffle=xyz must be one of global, block, shard, none", () -> ShuffleMode.parse("xyz", 4));
    assertMessage(
        "shuffle=Global must be one of global, block, shard, none",
        () -> ShuffleMode.parse("Global", 4));
    assertMessage(
        "shuffle=null must be one of global, block, shard, none", () -> ShuffleMode.parse(null, 4));
    assertMessage("shards_per_block=0 must be >= 1", () -> ShuffleMode.parse("block", 0));
    assertMessage("shards_per_block=-3 must be >= 1", () -> new ShuffleMode.Block(-3));
  }
}
