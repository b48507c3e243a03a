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
 * 2-D convolution, forward and both backward passes, against Lanes' own GEMM as the yardstick.
 *
 * <ul>
 *   <li>{@code resnet}: N32 C64 56x56, K64 3x3, padding 1 (a ResNet stage-2 layer);
 *   <li>{@code lenet}: N64 C1 28x28, K20 5x5 (LeNet's first layer).
 * </ul>
 * Every pass counts {@code 2 N K (C/groups) R S Hout Wout} flops. {@code gemm1024} runs a
 * 1024^3 {@link Gemm#sgemm} on the same thread count in the same run: convolution is im2col plus
 * GEMM, so its GFLOPS over that GEMM's is the share of the GEMM's speed the convolution keeps
 * (the targets are 80% forward, 70% backward for {@code resnet}). The workspace is allocated once
 * in the setup, as a graph planner would; no pass allocates.
 */
@State(Scope.Benchmark)
public class Conv2dBenchmark extends BenchmarkDefaults {
  @Param({"resnet", "lenet"})
  public String shape;

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

  static Conv2d shape(String name) {
    return switch (name) {
      case "resnet" -> Conv2d.builder(32, 64, 56, 56).filters(64).kernel(3, 3).padding(1, 1).build();
      case "lenet" -> Conv2d.builder(64, 1, 28, 28).filters(20).kernel(5, 5).build();
      default -> throw new IllegalArgumentException("unknown shape " + name);
    };
  }

  @Setup(Level.Trial)
  public void setUp() {
    conv = shape(shape);
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
