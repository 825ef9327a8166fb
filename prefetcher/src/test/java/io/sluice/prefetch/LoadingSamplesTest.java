package io.sluice.prefetch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class LoadingSamplesTest {
  @Test
  void aReadIsForgottenOnlyByItsOwnFuture() {
    LoadingSamples loading = new LoadingSamples();
    CompletableFuture<Void> first = new CompletableFuture<>();
    CompletableFuture<Void> second = new CompletableFuture<>();
    loading.put(42, first);
    loading.remove(42, first);
    assertFalse(loading.containsKey(42));
    loading.put(42, second); // read again after the first one ended
    loading.remove(42, first); // a late removal by the first read leaves the second alone
    assertSame(second, loading.get(42));
    loading.remove(42, second);
    assertNull(loading.get(42));
  }

  @Test
  void manyIdsAcrossThreadsEachMapToTheirOwnRead() throws InterruptedException {
    LoadingSamples loading = new LoadingSamples();
    int threads = 4;
    int perThread = 50_000;
    AtomicInteger wrong = new AtomicInteger();
    List<Thread> running = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      long base = (long) t * perThread;
      running.add(
          Thread.ofPlatform()
              .start(
                  () -> {
                    for (long id = base; id < base + perThread; id++) {
                      CompletableFuture<Void> f = new CompletableFuture<>();
                      loading.put(id, f);
                      if (loading.get(id) != f) {
                        wrong.incrementAndGet();
                      }
                      if (id % 2 == 0) {
                        loading.remove(id, f);
                      }
                    }
                  }));
    }
    for (Thread t : running) {
      t.join();
    }
    assertEquals(0, wrong.get(), "reads that found another read's future");
    for (long id = 0; id < (long) threads * perThread; id++) {
      assertTrue(loading.containsKey(id) == (id % 2 == 1), "id " + id);
    }
  }
}
