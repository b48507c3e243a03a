package dev.lanes.kernels;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs the parts of a task on a caller-supplied executor, the caller taking part 0. A part never
 * waits for a part that has not started (the GEMM's parts wait only for blocks that a running part
 * has taken), so an executor that runs the parts one after another gives the same result, on fewer
 * cores.
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
        // A rejected part gets a thread of its own, so that it still runs beside the caller's.
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
