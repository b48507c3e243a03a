package dev.lanes.kernels;

import java.util.concurrent.Executor;

/**
 * How many threads a kernel call may use, and whose threads they are.
 *
 * <ul>
 *   <li>{@link #threads(int)}: Lanes' own pool of daemon workers. The calling thread does one share
 *       of the work itself, and a call allocates nothing.
 *   <li>{@link #on(Executor, int)}: a framework's own executor. Each call submits {@code threads - 1}
 *       small tasks to it (the submission, and the executor's own queueing, may allocate).
 * </ul>
 * The global default is set with {@link #setDefault(Parallelism)}; every kernel also has an overload
 * that takes one per call. Results never depend on the thread count: kernels split work only
 * along dimensions that do not change the order of any sum.
 *
 * <p>A kernel may use fewer threads than allowed: on problems too small to repay the hand-off,
 * when Lanes' pool is already busy with another caller's work, or when an argument is a segment
 * confined to the calling thread.
 */
public final class Parallelism {
  private static final Parallelism SEQUENTIAL = new Parallelism(1, null);
  private static volatile Parallelism defaultParallelism =
      new Parallelism(Runtime.getRuntime().availableProcessors(), null);

  private final int threads;
  private final Executor executor;

  private Parallelism(int threads, Executor executor) {
    this.threads = threads;
    this.executor = executor;
  }

  /** Run on the calling thread only. */
  public static Parallelism sequential() {
    return SEQUENTIAL;
  }

  /** Up to {@code threads} threads: the caller plus {@code threads - 1} of Lanes' pool workers. */
  public static Parallelism threads(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads = " + threads + " must be >= 1");
    }
    return threads == 1 ? SEQUENTIAL : new Parallelism(threads, null);
  }

  /** Up to {@code threads} threads: the caller plus {@code threads - 1} tasks on {@code executor}. */
  public static Parallelism on(Executor executor, int threads) {
    Checks.notNull(executor, "executor");
    if (threads < 1) {
      throw new IllegalArgumentException("threads = " + threads + " must be >= 1");
    }
    return new Parallelism(threads, executor);
  }

  /** The parallelism used by calls that do not pass one; initially one thread per available core. */
  public static Parallelism getDefault() {
    return defaultParallelism;
  }

  public static void setDefault(Parallelism parallelism) {
    defaultParallelism = Checks.notNull(parallelism, "parallelism");
  }

  /** The most threads a call may use. */
  public int threads() {
    return threads;
  }

  /**
   * How many parts to cut a call into: at most {@link #threads()}, at most {@code units} (the pieces
   * that cannot be split further: rows, channels, blocks), at least {@code minFloatsPerThread} of
   * the call's {@code floats} per part, and 1 when a buffer cannot be reached from other threads.
   */
  int parts(long floats, long minFloatsPerThread, long units, boolean shareable) {
    long parts = Math.min(Math.min(threads, units), floats / minFloatsPerThread);
    return shareable ? (int) Math.max(1, parts) : 1;
  }

  /**
   * Whether {@code parts - 1} of Lanes' own workers are spinning right now, so that a call small
   * enough to stay on one thread by the usual thresholds could still be split cheaply. Always false
   * with an executor, whose threads Lanes cannot see.
   */
  boolean workersSpinning(int parts) {
    return executor == null && parts <= threads && WorkerPool.shared().spinning(parts - 1);
  }

  /** After {@link #workersSpinning} said no: lets the workers spin for the next call if calls come in a loop. */
  void warmUp(int parts) {
    if (executor == null && parts <= threads) {
      WorkerPool.shared().warmUp(parts - 1);
    }
  }

  /** Runs {@code parts} pieces of {@code task}, the caller taking part 0, and returns when all are done. */
  void invoke(ParallelTask task, int parts) {
    if (parts <= 1) {
      task.run(0, 1);
    } else if (executor == null) {
      WorkerPool.shared().invoke(task, parts);
    } else {
      ExecutorFanOut.invoke(executor, task, parts);
    }
  }

  @Override
  public String toString() {
    return executor == null ? "Parallelism[threads=" + threads + "]"
        : "Parallelism[threads=" + threads + ", executor=" + executor + "]";
  }
}
