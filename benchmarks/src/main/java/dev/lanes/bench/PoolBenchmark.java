package dev.lanes.bench;

import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Pool2d;
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
 * 2-D pooling over N32 C64 112x112 (a ResNet stem's output), against the copy yardstick.
 *
 * <ul>
 *   <li>{@code max2s2}: 2x2 window, stride 2; {@code max3s2p1}: 3x3, stride 2, padding 1 (ResNet's
 *       stem pool); both record the argmax. {@code avg2s2}: 2x2 average, stride 2.
 *   <li>{@code forward} reads x and writes y (and the int32 argmax for max);
 *       {@code backward} reads dy (and the argmax) and writes dx.
 *   <li>{@code copy}: a copy of x, the bytes a kernel that only read its input and wrote as much
 *       would move, on {@code threads} threads ({@link ParallelCopy}); the table scales its time to
 *       each op's bytes.
 * </ul>
 * Threads: {@code threads} (1 or 2), split over the N*C planes.
 */
@State(Scope.Benchmark)
public class PoolBenchmark extends BenchmarkDefaults {
  @Param({"max2s2", "max3s2p1", "avg2s2"})
  public String kind;

  @Param({"1", "2"})
  public int threads;

  private Arena arena;
  private Pool2d pool;
  private boolean max;
  private Parallelism parallelism;
  private MemorySegment x;
  private MemorySegment y;
  private MemorySegment argmax;
  private MemorySegment dy;
  private MemorySegment dx;
  private MemorySegment copyTarget;
  private ParallelCopy copier;

  static Pool2d shape(String kind) {
    Pool2d.Builder b = Pool2d.builder(32, 64, 112, 112);
    return switch (kind) {
      case "max2s2", "avg2s2" -> b.kernel(2, 2).stride(2, 2).build();
      case "max3s2p1" -> b.kernel(3, 3).stride(2, 2).padding(1, 1).build();
      default -> throw new IllegalArgumentException("unknown kind " + kind);
    };
  }

  @Setup(Level.Trial)
  public void setUp() {
    pool = shape(kind);
    max = kind.startsWith("max");
    parallelism = Parallelism.threads(threads);
    arena = Arena.ofShared();
    x = BenchData.uniform(arena, pool.inputFloats(), 1);
    dy = BenchData.uniform(arena, pool.outputFloats(), 2);
    y = BenchData.zeros(arena, pool.outputFloats());
    argmax = BenchData.zeros(arena, pool.outputFloats());
    dx = BenchData.zeros(arena, pool.inputFloats());
    copyTarget = BenchData.zeros(arena, pool.inputFloats());
    copier = new ParallelCopy(threads);
    forward();
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    copier.close();
    arena.close();
  }

  @Benchmark
  public MemorySegment forward() {
    if (max) {
      pool.maxForward(x, 0, y, 0, argmax, 0, parallelism);
    } else {
      pool.avgForward(x, 0, y, 0, true, parallelism);
    }
    return y;
  }

  @Benchmark
  public MemorySegment backward() {
    if (max) {
      pool.maxBackward(dy, 0, argmax, 0, dx, 0, parallelism);
    } else {
      pool.avgBackward(dy, 0, dx, 0, true, parallelism);
    }
    return dx;
  }

  @Benchmark
  public MemorySegment copy() {
    copier.copy(x, copyTarget, x.byteSize());
    return copyTarget;
  }
}
