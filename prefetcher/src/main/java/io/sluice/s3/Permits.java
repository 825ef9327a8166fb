package io.sluice.s3;

import java.util.ArrayDeque;

/**
 * An asynchronous counting semaphore: {@link #acquire} runs its task now when a permit is free,
 * else when one is released (on the releasing thread). No thread ever waits here.
 */
final class Permits {
  private final int max;
  private final ArrayDeque<Runnable> waiting = new ArrayDeque<>();
  private int used;

  Permits(int max) {
    this.max = max;
  }

  void acquire(Runnable task) {
    synchronized (this) {
      if (used >= max) {
        waiting.add(task);
        return;
      }
      used++;
    }
    task.run();
  }

  /** Hands the permit to the oldest waiting task, or frees it. */
  void release() {
    Runnable next;
    synchronized (this) {
      next = waiting.poll();
      if (next == null) {
        used--;
        return;
      }
    }
    next.run();
  }

  synchronized int queued() {
    return waiting.size();
  }

  synchronized int inUse() {
    return used;
  }
}
