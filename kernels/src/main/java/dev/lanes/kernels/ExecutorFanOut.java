package dev.lanes.kernels;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicReference;

/** Runs the parts of a task on a caller-supplied executor, the caller taking part 0. */
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
        piece.run(); // a saturated executor costs speed, never the result
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
    Throwable t = failure.get();
    if (t instanceof RuntimeException re) {
      throw re;
    } else if (t instanceof Error err) {
      throw err;
    } else if (t != null) {
      throw new IllegalStateException(t);
    }
  }
}
