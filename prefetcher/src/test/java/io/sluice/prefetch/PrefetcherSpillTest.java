package io.sluice.prefetch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.cache.Handle;
import io.sluice.cache.LruPolicy;
import io.sluice.cache.Reservation;
import io.sluice.cache.SampleCache;
import io.sluice.format.Formats;
import io.sluice.format.tokens.TokensSource;
import io.sluice.planner.EpochPlan;
import io.sluice.read.PosixReadBackend;
import io.sluice.read.ReadBackend;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.LongFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

class PrefetcherSpillTest {
  private static final int SAMPLE_BYTES = 1024; // PrefetcherTest's dataset
  private static final long FILLER_ID = 1_000_000; // not in the dataset

  @TempDir Path dir;

  /**
   * The policy of a spill tier that stops in its first {@link #victim()} (called under the spill's
   * lock, inside {@code spill.put}, before its copy) until the test lets it go.
   */
  private static final class StallingPolicy extends ForwardingPolicy {
    final CountDownLatch entered = new CountDownLatch(1);
    final CountDownLatch go = new CountDownLatch(1);
    volatile boolean armed;

    StallingPolicy() {
      super(new LruPolicy());
    }

    @Override
    public long victim() {
      if (armed) {
        armed = false;
        entered.countDown();
        try {
          go.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      return inner.victim();
    }
  }

  /**
   * Regression: a read-ahead committed a sample to the memory cache and only then copied it into
   * the spill tier. Committed and unpinned, its memory could be evicted and refilled with another
   * sample meanwhile, and the spill tier kept the mix (S3DaemonIT once saw a sample right for its
   * first 64 bytes only, served from the spill in the next epoch). Here the memory cache holds one
   * sample; while the spill's put waits on its policy, the test takes that memory for another
   * sample and scribbles on it, as a stream or the scheduler could.
   */
  @Test
  @Timeout(60)
  void spillCopiesASampleBeforeItsMemoryCanBeEvictedAndReused() throws Exception {
    PrefetcherTest.writeDataset(dir);
    StallingPolicy spillPolicy = new StallingPolicy();
    try (ReadBackend backend = new PosixReadBackend();
        TokensSource source = (TokensSource) Formats.open(dir, backend);
        SampleCache cache =
            SampleCache.builder().budgetBytes(SAMPLE_BYTES).policy(new LruPolicy()).build();
        SampleCache spill =
            SampleCache.builder()
                .budgetBytes(SAMPLE_BYTES)
                .policy(spillPolicy)
                .backingFolder(dir)
                .build()) {
      // A full spill tier: the next put asks its policy for a victim before copying.
      assertTrue(spill.put(FILLER_ID, MemorySegment.ofArray(new byte[SAMPLE_BYTES])));
      spillPolicy.armed = true;
      LongFunction<EpochPlan> plans = PrefetcherTest.plans(source, "none", 1, 16);
      try (Prefetcher p =
          new Prefetcher(
              "t",
              source,
              PrefetcherTest.TOTAL,
              backend,
              cache,
              spill,
              plans,
              PrefetchOptions.defaults())) {
        Prefetcher.Consumer c = p.open(0, 0, 0);
        try {
          // The read-ahead of step 0 fills the one-sample memory cache and stops in spill.put.
          assertTrue(
              spillPolicy.entered.await(30, TimeUnit.SECONDS), "no sample reached the spill");
          try (Reservation other = cache.reserve(FILLER_ID, SAMPLE_BYTES)) {
            if (other != null) {
              other.segment().fill((byte) 0x5A); // the memory of the sample being spilled, reused
            }
            spillPolicy.go.countDown();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (p.stats().inFlight() > 0 && System.nanoTime() < deadline) {
              Thread.sleep(1);
            }
            assertEquals(0, p.stats().inFlight(), "the read-ahead did not finish");
          }
          long[] ids = new long[16];
          plans.apply(0).fill(0, 0, ids, null);
          int spilled = 0;
          for (long id : ids) {
            try (Handle h = spill.lend(id)) {
              if (h != null) {
                PrefetcherTest.checkSample(id, h.segment());
                spilled++;
              }
            }
          }
          assertEquals(1, spilled, "step 0's sample in the spill tier");
        } finally {
          spillPolicy.go.countDown();
          c.close();
        }
      }
    }
  }
}
