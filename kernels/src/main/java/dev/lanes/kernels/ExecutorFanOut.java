package dev.lanes.kernels;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs the parts of a task on a caller-supplied executor, the caller taking part 0. The parts of a
 * call may wait for each other, so the executor must be able to run {@code parts - 1} tasks at once
 * (a pool whose threads are all blocked on this call would stall it).
 */
final class ExecutorFanOut {
  private ExecutorFanOut() {}

  static void invoke(Executor executor, ParallelTask task, int parts) {
    CountDownLatch done = new CountDownLatch(parts - 1);
    AtomicReference<Throwable> failure = new AtomicReference<>();
    for (int part = 1; part < parts; part++) {
      int mine = part;
      Runnable piece = () -> {
        try {
          task.run(mine, parts);
        } catch (Throwable t) {
          failure.compareAndSet(null, t);
        } finally {
          done.countDown();
        }
      };
      try {
        executor.execute(piece);
      } catch (RejectedExecutionException e) {
        // The parts of a call may wait for each other at a barrier, so a rejected part cannot run
        // inline on the caller; it gets a thread of its own. Slower, never wrong, never stuck.
        Thread.ofPlatform().daemon().name("lanes-overflow").start(piece);
      }
    }
    try {
      task.run(0, parts);
    } catch (Throwable t) {
      failure.compareAndSet(null, t);
    }
    boolean interrupted = false;
    while (true) {
      try {
        done.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    WorkerPool.rethrow(failure.get());
  }
}
