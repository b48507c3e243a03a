package dev.lanes.kernels;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Lanes' own worker threads. A call hands each worker a part number through a volatile field and
 * wakes it; workers spin briefly before parking, so back-to-back kernel calls (a training loop)
 * pay a cache-line hand-off rather than a scheduler wake-up. Nothing is allocated per call.
 *
 * <p>One call at a time owns the pool. A second caller that finds it busy runs its work on its own
 * thread instead of queueing; that is always allowed, because results do not depend on the split.
 */
final class WorkerPool {
  private static final WorkerPool SHARED = new WorkerPool();
  /** How long an idle worker spins before it parks. */
  private static final long SPIN_NANOS = 50_000;

  private final ReentrantLock owner = new ReentrantLock();
  private final AtomicInteger pending = new AtomicInteger();
  private volatile Worker[] workers = new Worker[0];
  private volatile Throwable failure;
  private volatile Thread waiter;
  /** When a call last found the workers it could have used parked ({@link #warmUp}). */
  private volatile long lastParkedFind = Long.MIN_VALUE / 2;

  static WorkerPool shared() {
    return SHARED;
  }

  void invoke(ParallelTask task, int parts) {
    if (!owner.tryLock()) {
      task.run(0, 1);
      return;
    }
    try {
      Worker[] crew = ensureWorkers(parts - 1);
      failure = null;
      waiter = Thread.currentThread();
      pending.set(parts - 1);
      for (int i = 0; i < parts - 1; i++) {
        crew[i].assign(task, i + 1, parts);
      }
      Throwable mine = null;
      try {
        task.run(0, parts);
      } catch (Throwable t) {
        mine = t;
      }
      awaitWorkers();
      waiter = null;
      Throwable theirs = failure;
      failure = null;
      rethrow(mine != null ? mine : theirs);
    } finally {
      owner.unlock();
    }
  }

  /**
   * Whether the first {@code count} workers exist and are spinning, so that handing each a part
   * costs a cache-line hand-off rather than a wake-up from park, and no other call owns the pool.
   * A hint only: a worker may park just after this answers.
   */
  boolean spinning(int count) {
    Worker[] crew = workers;
    if (crew.length < count || owner.isLocked()) {
      return false;
    }
    for (int i = 0; i < count; i++) {
      if (!crew[i].spinning) {
        return false;
      }
    }
    return true;
  }

  /**
   * Called by a call that could have used {@code count} workers cheaply but found them parked. Two
   * such calls within {@link #SPIN_NANOS} of each other look like a loop: then the workers are woken
   * (and created, the first time) to spin for the next call. A lone call pays nothing but a clock
   * read, so a program that calls a small kernel now and then never wakes a thread for it.
   */
  void warmUp(int count) {
    long now = System.nanoTime();
    long previous = lastParkedFind;
    lastParkedFind = now;
    if (now - previous > SPIN_NANOS || !owner.tryLock()) {
      return;
    }
    try {
      Worker[] crew = ensureWorkers(count);
      for (int i = 0; i < count; i++) {
        LockSupport.unpark(crew[i]);
      }
    } finally {
      owner.unlock();
    }
  }

  private void awaitWorkers() {
    long spinUntil = System.nanoTime() + SPIN_NANOS;
    while (pending.get() != 0) {
      if (System.nanoTime() < spinUntil) {
        Thread.onSpinWait();
      } else {
        LockSupport.parkNanos(this, 100_000);
      }
    }
  }

  /** Rethrows what a part of a kernel call threw, unchecked as it was; null means nothing was. */
  static void rethrow(Throwable t) {
    if (t == null) {
      return;
    }
    if (t instanceof RuntimeException re) {
      throw re;
    }
    if (t instanceof Error e) {
      throw e;
    }
    throw new IllegalStateException(t);
  }

  private Worker[] ensureWorkers(int count) {
    Worker[] crew = workers;
    if (crew.length >= count) {
      return crew;
    }
    Worker[] grown = java.util.Arrays.copyOf(crew, count);
    for (int i = crew.length; i < count; i++) {
      grown[i] = new Worker(this, i + 1);
      grown[i].start();
    }
    workers = grown;
    return grown;
  }

  private void done(Throwable t) {
    if (t != null && failure == null) {
      failure = t;
    }
    if (pending.decrementAndGet() == 0) {
      Thread w = waiter;
      if (w != null) {
        LockSupport.unpark(w);
      }
    }
  }

  private static final class Worker extends Thread {
    private final WorkerPool pool;
    private volatile ParallelTask task;
    /** True while waiting for a task without being parked (see {@link WorkerPool#spinning}). */
    private volatile boolean spinning;
    private int part;
    private int parts;

    Worker(WorkerPool pool, int index) {
      super("lanes-worker-" + index);
      this.pool = pool;
      setDaemon(true);
    }

    void assign(ParallelTask task, int part, int parts) {
      this.part = part;
      this.parts = parts;
      this.task = task; // volatile write publishes part and parts
      if (!spinning) {
        LockSupport.unpark(this);
      }
    }

    @Override
    public void run() {
      while (true) {
        ParallelTask t = awaitTask();
        Throwable thrown = null;
        try {
          t.run(part, parts);
        } catch (Throwable e) {
          thrown = e;
        }
        task = null;
        // Spinning from here on as far as callers can tell: a caller released by done() may come
        // back with its next call before this thread is back in awaitTask.
        spinning = true;
        pool.done(thrown);
      }
    }

    private ParallelTask awaitTask() {
      long spinUntil = System.nanoTime() + SPIN_NANOS;
      ParallelTask t;
      spinning = true;
      while ((t = task) == null) {
        if (System.nanoTime() < spinUntil) {
          Thread.onSpinWait();
        } else {
          spinning = false;
          // Read task again after clearing spinning: assign() reads spinning after writing task,
          // so either this read sees the task or assign() sees spinning == false and unparks.
          if (task == null) {
            LockSupport.park(pool);
          }
          // Woken with a task, or by warmUp to spin for the next call.
          spinning = true;
          spinUntil = System.nanoTime() + SPIN_NANOS;
        }
      }
      spinning = false;
      return t;
    }
  }
}
