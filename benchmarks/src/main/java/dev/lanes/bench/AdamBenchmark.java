package dev.lanes.bench;

import dev.lanes.kernels.Optimizer;
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
 * One Adam step over 16M parameters, against the copy yardstick.
 *
 * <ul>
 *   <li>{@code adam}: reads p, g, m and v, writes p, m and v: 28 bytes per parameter.
 *   <li>{@code copy}: {@link MemorySegment#copy} of the 16M-float gradient (8 bytes per float).
 * </ul>
 * The step count keeps growing across invocations; the bias corrections it feeds are scalars, so
 * it does not change the work.
 */
@State(Scope.Benchmark)
public class AdamBenchmark extends BenchmarkDefaults {
  static final long PARAMETERS = 16L << 20;

  @Param({"16M"})
  public String size;

  private Arena arena;
  private MemorySegment p;
  private MemorySegment g;
  private MemorySegment m;
  private MemorySegment v;
  private MemorySegment copyTarget;
  private long step;

  @Setup(Level.Trial)
  public void setUp() {
    arena = Arena.ofShared();
    p = BenchData.uniform(arena, PARAMETERS, 1);
    g = BenchData.uniform(arena, PARAMETERS, 2);
    m = BenchData.zeros(arena, PARAMETERS);
    v = BenchData.zeros(arena, PARAMETERS);
    copyTarget = BenchData.zeros(arena, PARAMETERS);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public MemorySegment adam() {
    Optimizer.adam(PARAMETERS, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, ++step, p, 0, g, 0, m, 0, v, 0);
    return p;
  }

  @Benchmark
  public MemorySegment copy() {
    MemorySegment.copy(g, 0, copyTarget, 0, g.byteSize());
    return copyTarget;
  }
}
