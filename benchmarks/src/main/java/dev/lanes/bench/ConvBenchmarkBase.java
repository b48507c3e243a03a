package dev.lanes.bench;

import dev.lanes.kernels.Conv2d;
import dev.lanes.kernels.Gemm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Transpose;
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
 * The passes every convolution benchmark measures, and its yardstick: {@code forward},
 * {@code backwardData}, {@code backwardWeights}, and {@code gemm1024}, a 1024^3 Lanes
 * {@link Gemm#sgemm} on the same thread count in the same run. Convolution is im2col plus GEMM, so
 * its GFLOPS over that GEMM's is the share of the GEMM's speed it keeps. The workspace is
 * allocated once in the setup, as a graph planner would; no pass allocates. Subclasses name the
 * shapes.
 */
@State(Scope.Benchmark)
public abstract class ConvBenchmarkBase extends BenchmarkDefaults {
  @Param({"1", "2"})
  public int threads;

  private Arena arena;
  private Conv2d conv;
  private Parallelism parallelism;
  private MemorySegment x;
  private MemorySegment w;
  private MemorySegment bias;
  private MemorySegment y;
  private MemorySegment dy;
  private MemorySegment dx;
  private MemorySegment dw;
  private MemorySegment workspace;
  private GemmYardstick gemm;

  /** The convolution of this trial's parameters. */
  protected abstract Conv2d convolution();

  @Setup(Level.Trial)
  public void setUp() {
    conv = convolution();
    parallelism = Parallelism.threads(threads);
    arena = Arena.ofShared();
    x = BenchData.uniform(arena, conv.inputFloats(), 1);
    w = BenchData.uniform(arena, conv.weightFloats(), 2);
    bias = BenchData.uniform(arena, conv.filters(), 3);
    dy = BenchData.uniform(arena, conv.outputFloats(), 4);
    y = BenchData.zeros(arena, conv.outputFloats());
    dx = BenchData.zeros(arena, conv.inputFloats());
    dw = BenchData.zeros(arena, conv.weightFloats());
    workspace = BenchData.zeros(arena, conv.workspaceFloats(threads));
    gemm = new GemmYardstick(arena, 1024, parallelism);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public MemorySegment forward() {
    conv.forward(x, 0, w, 0, bias, 0, y, 0, workspace, parallelism);
    return y;
  }

  @Benchmark
  public MemorySegment backwardData() {
    conv.backwardData(dy, 0, w, 0, dx, 0, workspace, parallelism);
    return dx;
  }

  @Benchmark
  public MemorySegment backwardWeights() {
    conv.backwardWeights(x, 0, dy, 0, dw, 0, workspace, parallelism);
    return dw;
  }

  @Benchmark
  public MemorySegment gemm1024() {
    return gemm.run();
  }

  /** A square Lanes SGEMM on off-heap operands: the compute yardstick of GEMM-based kernels. */
  static final class GemmYardstick {
    private final int size;
    private final MemorySegment a;
    private final MemorySegment b;
    private final MemorySegment c;
    private final Parallelism parallelism;

    GemmYardstick(Arena arena, int size, Parallelism parallelism) {
      this.size = size;
      this.parallelism = parallelism;
      a = BenchData.uniform(arena, (long) size * size, 11);
      b = BenchData.uniform(arena, (long) size * size, 12);
      c = BenchData.zeros(arena, (long) size * size);
    }

    MemorySegment run() {
      Gemm.sgemm(Transpose.NONE, Transpose.NONE, size, size, size, 1f, a, 0, size, b, 0, size, 0f, c, 0, size,
          parallelism);
      return c;
    }
  }
}
