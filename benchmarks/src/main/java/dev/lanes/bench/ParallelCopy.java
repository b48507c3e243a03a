package dev.lanes.bench;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The copy yardstick at a thread count: one segment copied into another in equal, cache-line
 * aligned parts, one per thread, the way the kernels it is set against split their work.
 *
 * <p>Why not one thread for every thread count: measured here, two threads copy 1.5 to 1.8 times
 * the bytes per second of one (13 GB/s against 20 to 24 GB/s, reads plus writes), so a two-thread
 * kernel timed against a one-thread copy looked up to that much closer to memory speed than it is.
 *
 * <p>Why helpers that spin rather than an {@code ExecutorService}: the yardstick must hand work to
 * its threads at least as fast as the kernels do (their workers spin briefly before parking, see
 * the kernels' worker pool), or the slack inflates the copy time and flatters every two-thread
 * ratio. Measured in one JVM, 4,096,000 bytes, two threads, calls back to back: a fixed thread
 * pool took 101-115 us per copy, helpers spinning on a generation counter 63-66 us (one thread:
 * 125-134 us); 64 MiB: 6.7-8.5 ms against 5.9-7.5 ms. A call allocates nothing either (the pool's
 * futures and lambdas were about 200 B per call).
 */
final class ParallelCopy implements AutoCloseable {
  /** How long an idle helper spins before it parks: the kernels' worker pool uses the same. */
  private static final long SPIN_NANOS = 50_000;

  private final int threads;
  private final Helper[] helpers;
  private final AtomicInteger pending = new AtomicInteger();
  /** Bumped once per call, after the call's fields are set; helpers start when they see it move. */
  private volatile long generation;
  private volatile boolean closed;
  private MemorySegment src;
  private MemorySegment dst;
  private long bytes;
  private long part;

  ParallelCopy(int threads) {
    this.threads = threads;
    this.helpers = new Helper[threads - 1];
    for (int t = 1; t < threads; t++) {
      helpers[t - 1] = new Helper(t);
      helpers[t - 1].start();
    }
  }

  /** Copies {@code bytes} bytes from the start of src to the start of dst. */
  void copy(MemorySegment src, MemorySegment dst, long bytes) {
    if (threads == 1) {
      MemorySegment.copy(src, 0, dst, 0, bytes);
      return;
    }
    this.src = src;
    this.dst = dst;
    this.bytes = bytes;
    this.part = (bytes / threads + 63) & ~63L;
    pending.set(threads - 1);
    generation = generation + 1;
    for (Helper h : helpers) {
      if (h.parked) {
        LockSupport.unpark(h);
      }
    }
    copyPart(0);
    while (pending.get() != 0) {
      Thread.onSpinWait();
    }
    this.src = null;
    this.dst = null;
  }

  private void copyPart(int index) {
    long from = Math.min(bytes, index * part);
    long to = Math.min(bytes, from + part);
    MemorySegment.copy(src, from, dst, from, to - from);
  }

  @Override
  public void close() {
    closed = true;
    for (Helper h : helpers) {
      LockSupport.unpark(h);
    }
  }

  private final class Helper extends Thread {
    private final int index;
    /** Set before parking and cleared after, so that a call unparks only a helper that may sleep. */
    volatile boolean parked;

    Helper(int index) {
      super("copy-helper-" + index);
      this.index = index;
      setDaemon(true);
    }

    @Override
    public void run() {
      long seen = generation;
      while (!closed) {
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        while (generation == seen && !closed) {
          if (System.nanoTime() < spinUntil) {
            Thread.onSpinWait();
          } else {
            parked = true;
            // Checked again after announcing the park: a call that bumped the generation before it
            // read the flag has its unpark pending, one after it is seen here.
            if (generation == seen && !closed) {
              LockSupport.park(this);
            }
            parked = false;
          }
        }
        if (closed) {
          return;
        }
        seen = generation;
        copyPart(index);
        pending.decrementAndGet();
      }
    }
  }
}
