package dev.lanes.bench;

import dev.lanes.kernels.Activation;
import dev.lanes.kernels.Parallelism;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Elementwise activations on 16M floats (64 MiB per operand, far beyond the caches), against the
 * copy yardstick.
 *
 * <ul>
 *   <li>{@code forward}: reads x, writes y (8 bytes per element).
 *   <li>{@code backward}: reads x and dy, writes dx (12 bytes per element).
 *   <li>{@code forwardCached}: the same number of elements as repeated calls on the first
 *       {@link #CACHED_PER_THREAD} floats per thread (256 KiB in and out per thread, a 512 KiB L2's
 *       worth), divided by the same copy time as {@code forward}: if it still takes more than twice
 *       that, the function is bound by its arithmetic, not its traffic.
 *   <li>{@code copy}: a copy of x into another buffer (8 bytes per element) on {@code threads}
 *       threads ({@link ParallelCopy}), in the same run; the table scales its time to each op's bytes.
 * </ul>
 * Threads: {@code threads} (1 or 2), each a run of whole vectors.
 * Inputs are uniform in [-4, 4): both branches of every piecewise function are taken.
 */
@State(Scope.Benchmark)
public class ActivationBenchmark extends BenchmarkDefaults {
  static final long ELEMENTS = 16L << 20;

  /** Floats per thread in each call of {@code forwardCached}: the least an activation splits off for a thread. */
  static final long CACHED_PER_THREAD = 1L << 16;

  @Param({"relu", "sigmoid", "tanh", "gelu"})
  public String fn;

  @Param({"1", "2"})
  public int threads;

  private Parallelism parallelism;
  private ParallelCopy copier;

  private Activation activation;
  private Arena arena;
  private MemorySegment x;
  private MemorySegment y;
  private MemorySegment dy;
  private MemorySegment dx;

  @Setup(Level.Trial)
  public void setUp() {
    activation = switch (fn) {
      case "relu" -> Activation.RELU;
      case "sigmoid" -> Activation.SIGMOID;
      case "tanh" -> Activation.TANH;
      case "gelu" -> Activation.GELU;
      default -> throw new IllegalArgumentException("unknown fn " + fn);
    };
    parallelism = Parallelism.threads(threads);
    copier = new ParallelCopy(threads);
    arena = Arena.ofShared();
    x = BenchData.uniform(arena, ELEMENTS, 1);
    dy = BenchData.uniform(arena, ELEMENTS, 2);
    y = BenchData.zeros(arena, ELEMENTS);
    dx = BenchData.zeros(arena, ELEMENTS);
    scale(x, 4);
  }

  private static void scale(MemorySegment s, float factor) {
    for (long i = 0; i < ELEMENTS; i++) {
      s.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i,
          s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i) * factor);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    copier.close();
    arena.close();
  }

  @Benchmark
  public MemorySegment forward() {
    activation.forward(ELEMENTS, x, 0, y, 0, parallelism);
    return y;
  }

  @Benchmark
  public MemorySegment backward() {
    activation.backward(ELEMENTS, x, 0, dy, 0, dx, 0, parallelism);
    return dx;
  }

  @Benchmark
  public MemorySegment forwardCached() {
    long chunk = CACHED_PER_THREAD * threads;
    for (long done = 0; done < ELEMENTS; done += chunk) {
      activation.forward(chunk, x, 0, y, 0, parallelism);
    }
    return y;
  }

  @Benchmark
  public MemorySegment copy() {
    copier.copy(x, y, x.byteSize());
    return y;
  }
}
