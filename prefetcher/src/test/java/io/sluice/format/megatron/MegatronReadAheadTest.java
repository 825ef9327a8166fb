package io.sluice.format.megatron;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.cache.BeladyPolicy;
import io.sluice.cache.NextUse;
import io.sluice.cache.SampleCache;
import io.sluice.format.Formats;
import io.sluice.format.IndexProgress;
import io.sluice.planner.EpochPlan;
import io.sluice.planner.GlobalSequence;
import io.sluice.planner.ShuffleMode;
import io.sluice.prefetch.PrefetchOptions;
import io.sluice.prefetch.Prefetcher;
import io.sluice.read.PosixReadBackend;
import io.sluice.read.ReadBackend;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.util.ValueVectorUtility;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Megatron sequences of every length read ahead into the cache arrive byte for byte. */
class MegatronReadAheadTest {
  @TempDir Path dir;

  @ParameterizedTest
  @ValueSource(strings = {"global", "block", "none"})
  void readAheadDeliversEverySequenceExactly(String shuffle) throws IOException {
    Random rnd = new Random(5);
    MegatronDtype dtype = MegatronDtype.INT32;
    List<byte[]> all = new ArrayList<>();
    for (int s = 0; s < 4; s++) {
      List<byte[]> seqs = MegatronWriter.randomSequences(rnd, dtype, 300, 64);
      MegatronWriter.write(dir, "shard-" + s, dtype, seqs);
      all.addAll(seqs);
    }
    new MegatronFormat().index(dir, Map.of(), IndexProgress.NONE);
    try (ReadBackend backend = new PosixReadBackend();
        MegatronSource source = (MegatronSource) Formats.open(dir, backend);
        SampleCache cache =
            SampleCache.builder()
                .budgetBytes(1 << 20)
                .slabBytes(1 << 20)
                .policy(new BeladyPolicy((id, step) -> NextUse.NEVER))
                .build();
        BufferAllocator allocator = new RootAllocator()) {
      EpochPlan plan =
          EpochPlan.of(
              GlobalSequence.of(source.layout(), 3, 0, ShuffleMode.parse(shuffle, 2)),
              1,
              16,
              false);
      try (Prefetcher p =
              new Prefetcher(
                  "m",
                  source,
                  all.size(),
                  backend,
                  cache,
                  e -> plan,
                  PrefetchOptions.defaults().withHorizonSteps(8));
          Prefetcher.Consumer c = p.open(0, 0, 0)) {
        long[] ids = new long[16];
        for (long step = 0; step < plan.stepCount(); step++) {
          plan.fill(0, step, ids, null);
          try (Prefetcher.Batch b = c.take(step, ids, 16);
              VectorSchemaRoot root = VectorSchemaRoot.create(source.schema(), allocator)) {
            for (int i = 0; i < 16; i++) {
              byte[] raw = b.bytes()[i].toArray(ValueLayout.JAVA_BYTE);
              assertArrayEquals(all.get((int) ids[i]), raw, "sample_id=" + ids[i]);
            }
            source.fillFrom(ids, 16, b.bytes(), root);
            root.setRowCount(16);
            ListVector tokens = (ListVector) root.getVector(MegatronSource.TOKENS_COLUMN);
            ValueVectorUtility.validateFull(tokens);
            BaseFixedWidthVector data = (BaseFixedWidthVector) tokens.getDataVector();
            for (int r = 0; r < 16; r++) {
              int start = tokens.getElementStartIndex(r);
              byte[] got = new byte[(tokens.getElementEndIndex(r) - start) * 4];
              data.getDataBuffer().getBytes((long) start * 4, got);
              assertArrayEquals(all.get((int) ids[r]), got, "row " + r);
            }
          }
        }
        assertNull(p.failure());
        assertTrue(p.stats().samplesRead() > 0, p.stats().toString());
        assertEquals(0, p.stats().failedReads(), p.stats().toString());
      }
    }
  }
}
