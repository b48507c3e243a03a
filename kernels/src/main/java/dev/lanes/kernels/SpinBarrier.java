package dev.lanes.kernels;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A reusable barrier for the threads of one kernel call. Arrivals spin (the other threads are
 * microseconds away in a balanced call), then back off to short parks. Allocation-free. If a
 * thread fails, {@link #breakBarrier()} releases the others with an exception instead of leaving
 * them waiting forever.
 */
final class SpinBarrier {
  private final AtomicInteger waiting = new AtomicInteger();
  private volatile int generation;
  private volatile boolean broken;
  private int parties;

  /** Prepares the barrier for a call with {@code parties} threads. Not concurrent with await. */
  void reset(int parties) {
    this.parties = parties;
    waiting.set(0);
    broken = false;
  }

  void breakBarrier() {
    broken = true;
  }

  void await() {
    int arrivedIn = generation;
    if (waiting.incrementAndGet() == parties) {
      waiting.set(0);
      generation = arrivedIn + 1; // volatile write releases the spinners
      return;
    }
    int spins = 0;
    while (generation == arrivedIn) {
      if (broken) {
        throw new IllegalStateException("another thread of this kernel call failed");
      }
      if (++spins < 20_000) {
        Thread.onSpinWait();
      } else {
        LockSupport.parkNanos(20_000);
      }
    }
  }
}
