package dev.lanes.bench;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The copy yardstick at a thread count: one segment copied into another in equal, cache-line
 * aligned parts, one per thread, the way the kernels it is set against split their work.
 *
 * <p>Why not one thread for every thread count: measured here, two threads copy 1.5 to 1.8 times
 * the bytes per second of one (13 GB/s against 20 to 24 GB/s, reads plus writes), so a two-thread
 * kernel timed against a one-thread copy looked up to that much closer to memory speed than it is.
 */
final class ParallelCopy implements AutoCloseable {
  private final int threads;
  private final ExecutorService helpers;

  ParallelCopy(int threads) {
    this.threads = threads;
    this.helpers = threads > 1 ? Executors.newFixedThreadPool(threads - 1, r -> {
      Thread t = new Thread(r, "copy-helper");
      t.setDaemon(true);
      return t;
    }) : null;
  }

  /** Copies {@code bytes} bytes from the start of src to the start of dst. */
  void copy(MemorySegment src, MemorySegment dst, long bytes) {
    if (threads == 1) {
      MemorySegment.copy(src, 0, dst, 0, bytes);
      return;
    }
    long part = (bytes / threads + 63) & ~63L;
    List<Callable<Void>> others = new ArrayList<>(threads - 1);
    for (int t = 1; t < threads; t++) {
      long from = Math.min(bytes, t * part);
      long to = Math.min(bytes, from + part);
      others.add(() -> {
        MemorySegment.copy(src, from, dst, from, to - from);
        return null;
      });
    }
    List<Future<Void>> running = new ArrayList<>(threads - 1);
    for (Callable<Void> task : others) {
      running.add(helpers.submit(task));
    }
    MemorySegment.copy(src, 0, dst, 0, Math.min(bytes, part));
    try {
      for (Future<Void> f : running) {
        f.get();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  @Override
  public void close() {
    if (helpers != null) {
      helpers.shutdownNow();
    }
  }
}
