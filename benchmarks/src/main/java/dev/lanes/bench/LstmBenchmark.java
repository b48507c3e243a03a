package dev.lanes.bench;

import dev.lanes.bench.ConvBenchmarkBase.GemmYardstick;
import dev.lanes.kernels.Lstm;
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
 * An LSTM layer over T=50 steps of a batch of 64, input and hidden size 256, against Lanes' own
 * 512^3 GEMM on the same threads in the same run (the recurrent kernels are GEMMs plus pointwise
 * passes, so the share of the GEMM's speed they keep is their figure of merit).
 *
 * <ul>
 *   <li>{@code forward}: {@code 2 T B 4H (I + H)} flops.
 *   <li>{@code forwardBackward}: the forward then the backward through time with every gradient
 *       (dx, dW_ih, dW_hh, both biases, dh0, dc0): three times the forward's flops.
 *   <li>{@code gemm512}: the yardstick.
 * </ul>
 * The workspace is allocated once in the setup; no call allocates.
 */
@State(Scope.Benchmark)
public class LstmBenchmark extends BenchmarkDefaults {
  static final int T = 50;
  static final int B = 64;
  static final int I = 256;
  static final int H = 256;

  @Param({"1", "2"})
  public int threads;

  private Arena arena;
  private Lstm lstm;
  private Parallelism parallelism;
  private MemorySegment x;
  private MemorySegment wIh;
  private MemorySegment wHh;
  private MemorySegment bIh;
  private MemorySegment bHh;
  private MemorySegment h0;
  private MemorySegment c0;
  private MemorySegment y;
  private MemorySegment hT;
  private MemorySegment cT;
  private MemorySegment dy;
  private MemorySegment dx;
  private MemorySegment dwIh;
  private MemorySegment dwHh;
  private MemorySegment dbIh;
  private MemorySegment dbHh;
  private MemorySegment dh0;
  private MemorySegment dc0;
  private MemorySegment workspace;
  private GemmYardstick gemm;

  @Setup(Level.Trial)
  public void setUp() {
    lstm = Lstm.of(T, B, I, H);
    parallelism = Parallelism.threads(threads);
    arena = Arena.ofShared();
    x = BenchData.uniform(arena, (long) T * B * I, 1);
    wIh = BenchData.uniform(arena, 4L * H * I, 2);
    wHh = BenchData.uniform(arena, 4L * H * H, 3);
    bIh = BenchData.uniform(arena, 4L * H, 4);
    bHh = BenchData.uniform(arena, 4L * H, 5);
    h0 = BenchData.uniform(arena, (long) B * H, 6);
    c0 = BenchData.uniform(arena, (long) B * H, 7);
    dy = BenchData.uniform(arena, (long) T * B * H, 8);
    y = BenchData.zeros(arena, (long) T * B * H);
    hT = BenchData.zeros(arena, (long) B * H);
    cT = BenchData.zeros(arena, (long) B * H);
    dx = BenchData.zeros(arena, (long) T * B * I);
    dwIh = BenchData.zeros(arena, 4L * H * I);
    dwHh = BenchData.zeros(arena, 4L * H * H);
    dbIh = BenchData.zeros(arena, 4L * H);
    dbHh = BenchData.zeros(arena, 4L * H);
    dh0 = BenchData.zeros(arena, (long) B * H);
    dc0 = BenchData.zeros(arena, (long) B * H);
    workspace = BenchData.zeros(arena, lstm.workspaceFloats());
    gemm = new GemmYardstick(arena, 512, parallelism);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public MemorySegment forward() {
    lstm.forward(x, 0, wIh, 0, wHh, 0, bIh, 0, bHh, 0, h0, 0, c0, 0, y, 0, hT, 0, cT, 0, workspace, 0, parallelism);
    return y;
  }

  @Benchmark
  public MemorySegment forwardBackward() {
    forward();
    lstm.backward(x, 0, wIh, 0, wHh, 0, h0, 0, y, 0, dy, 0, null, 0, null, 0, dx, 0, dwIh, 0, dwHh, 0, dbIh, 0, dbHh,
        0, dh0, 0, dc0, 0, workspace, 0, parallelism);
    return dwHh;
  }

  @Benchmark
  public MemorySegment gemm512() {
    return gemm.run();
  }
}
