package dev.lanes.bench;

import dev.lanes.bench.ConvBenchmarkBase.GemmYardstick;
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
 * A recurrent layer over T=50 steps of a batch of 64, input and hidden size 256, against Lanes'
 * own 512^3 GEMM on the same threads in the same run: the recurrent kernels are GEMMs plus
 * pointwise passes, so the share of the GEMM's speed they keep is their figure of merit.
 *
 * <ul>
 *   <li>{@code forward}: {@code 2 T B G H (I + H)} flops, G = 4 gates for the LSTM, 3 for the GRU.
 *   <li>{@code forwardBackward}: the forward, then the backward through time with every gradient:
 *       three times the forward's flops.
 *   <li>{@code gemm512}: the yardstick.
 * </ul>
 * The operands and the workspace are allocated once in the setup; no call allocates.
 */
@State(Scope.Benchmark)
public abstract class RecurrentBenchmarkBase extends BenchmarkDefaults {
  static final int T = 50;
  static final int B = 64;
  static final int I = 256;
  static final int H = 256;

  @Param({"1", "2"})
  public int threads;

  protected Arena arena;
  protected Parallelism parallelism;
  protected MemorySegment x;
  protected MemorySegment wIh;
  protected MemorySegment wHh;
  protected MemorySegment bIh;
  protected MemorySegment bHh;
  protected MemorySegment h0;
  protected MemorySegment y;
  protected MemorySegment hT;
  protected MemorySegment dy;
  protected MemorySegment dx;
  protected MemorySegment dwIh;
  protected MemorySegment dwHh;
  protected MemorySegment dbIh;
  protected MemorySegment dbHh;
  protected MemorySegment dh0;
  protected MemorySegment workspace;
  private GemmYardstick gemm;

  /** Gates per unit: 4 for the LSTM, 3 for the GRU. */
  protected abstract int gates();

  /** Floats of the layer's workspace. */
  protected abstract long workspaceFloats();

  @Setup(Level.Trial)
  public void setUp() {
    int g = gates();
    parallelism = Parallelism.threads(threads);
    arena = Arena.ofShared();
    x = BenchData.uniform(arena, (long) T * B * I, 1);
    wIh = BenchData.uniform(arena, (long) g * H * I, 2);
    wHh = BenchData.uniform(arena, (long) g * H * H, 3);
    bIh = BenchData.uniform(arena, (long) g * H, 4);
    bHh = BenchData.uniform(arena, (long) g * H, 5);
    h0 = BenchData.uniform(arena, (long) B * H, 6);
    dy = BenchData.uniform(arena, (long) T * B * H, 8);
    y = BenchData.zeros(arena, (long) T * B * H);
    hT = BenchData.zeros(arena, (long) B * H);
    dx = BenchData.zeros(arena, (long) T * B * I);
    dwIh = BenchData.zeros(arena, (long) g * H * I);
    dwHh = BenchData.zeros(arena, (long) g * H * H);
    dbIh = BenchData.zeros(arena, (long) g * H);
    dbHh = BenchData.zeros(arena, (long) g * H);
    dh0 = BenchData.zeros(arena, (long) B * H);
    workspace = BenchData.zeros(arena, workspaceFloats());
    gemm = new GemmYardstick(arena, 512, parallelism);
    setUpLayer();
  }

  /** Operands only one layer has; called at the end of the setup (JMH runs a subclass's own setup first). */
  protected void setUpLayer() {}

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public MemorySegment gemm512() {
    return gemm.run();
  }
}
