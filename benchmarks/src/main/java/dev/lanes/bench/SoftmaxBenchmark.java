package dev.lanes.bench;

import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Softmax;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Softmax over the last axis of {@code rows x cols}, against the memory-bandwidth yardstick.
 *
 * <ul>
 *   <li>{@code forward}: reads x, writes y (8 bytes per element).
 *   <li>{@code backward}: reads y and dy, writes dx (12 bytes per element).
 *   <li>{@code crossEntropy}: the fused loss against int32 labels, forward plus gradient: reads
 *       the logits and the labels, writes dlogits (8 bytes per element, 4 per row).
 *   <li>{@code forwardCached} and {@code crossEntropyCached}: the same ops over the same number of
 *       rows, as repeated calls on the first {@link #cachedRows} rows, whose input and output stay in
 *       each thread's L2. The table divides them by the same copy time as the ops themselves: a
 *       cached op that still takes more than twice that is bound by its arithmetic, not its traffic.
 *   <li>{@code copy}: a copy of the same rows*cols floats (8 bytes per element) on {@code threads}
 *       threads ({@link ParallelCopy}), in the same run: the time these kernels would take if they
 *       only moved their bytes at this machine's copy bandwidth.
 * </ul>
 * Threads: {@code threads} (1 or 2), each a run of whole rows.
 * Softmax is memory-bound; the {@code lanes bench} table prints each op's time as a multiple of the
 * copy time for its bytes.
 */
@State(Scope.Benchmark)
public class SoftmaxBenchmark extends BenchmarkDefaults {
  @Param({"1024x1000", "64x32000"})
  public String shape;

  @Param({"1", "2"})
  public int threads;

  private Parallelism parallelism;
  private ParallelCopy copier;

  private int rows;
  private int cols;
  private int cachedRows;
  private Arena arena;
  private MemorySegment x;
  private MemorySegment y;
  private MemorySegment dy;
  private MemorySegment dx;
  private MemorySegment copyTarget;
  private MemorySegment labels;

  @Setup(Level.Trial)
  public void setUp() {
    String[] parts = shape.split("x");
    rows = Integer.parseInt(parts[0]);
    cols = Integer.parseInt(parts[1]);
    cachedRows = cachedRows(rows, cols, threads);
    long bytes = (long) rows * cols * Float.BYTES;
    parallelism = Parallelism.threads(threads);
    copier = new ParallelCopy(threads);
    arena = Arena.ofShared();
    x = arena.allocate(bytes, 64);
    y = arena.allocate(bytes, 64);
    dy = arena.allocate(bytes, 64);
    dx = arena.allocate(bytes, 64);
    copyTarget = arena.allocate(bytes, 64);
    SplittableRandom random = new SplittableRandom(7);
    for (long i = 0; i < (long) rows * cols; i++) {
      x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (random.nextGaussian() * 4));
      dy.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextGaussian());
    }
    labels = arena.allocate(4L * rows, 64);
    for (int r = 0; r < rows; r++) {
      labels.setAtIndex(ValueLayout.JAVA_INT, r, random.nextInt(cols));
    }
    forward();
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    copier.close();
    arena.close();
  }

  @Benchmark
  public MemorySegment forward() {
    Softmax.forward(rows, cols, x, 0, y, 0, parallelism);
    return y;
  }

  @Benchmark
  public MemorySegment backward() {
    Softmax.backward(rows, cols, y, 0, dy, 0, dx, 0, parallelism);
    return dx;
  }

  @Benchmark
  public float crossEntropy() {
    return Softmax.crossEntropy(rows, cols, x, 0, labels, 0, -100, dx, 0, parallelism);
  }

  @Benchmark
  public MemorySegment forwardCached() {
    for (int done = 0; done < rows; done += cachedRows) {
      Softmax.forward(cachedRows, cols, x, 0, y, 0, parallelism);
    }
    return y;
  }

  @Benchmark
  public float crossEntropyCached() {
    float sum = 0f;
    for (int done = 0; done < rows; done += cachedRows) {
      sum += Softmax.crossEntropy(cachedRows, cols, x, 0, labels, 0, -100, dx, 0, parallelism);
    }
    return sum;
  }

  /**
   * Rows per call of the cached ops: the fewest that divide {@code rows} into equal calls and give
   * each thread at least 32768 floats, the least Softmax hands a thread of its own. That is 256 KiB
   * in and out per thread at both shapes (64 rows of 1000 or 2 of 32000 per thread), a 512 KiB L2's worth.
   */
  static int cachedRows(int rows, int cols, int threads) {
    for (int r = threads; r <= rows; r += threads) {
      if (rows % r == 0 && (long) r * cols >= 32768L * threads) {
        return r;
      }
    }
    return rows;
  }

  @Benchmark
  public MemorySegment copy() {
    copier.copy(x, copyTarget, x.byteSize());
    return copyTarget;
  }
}
