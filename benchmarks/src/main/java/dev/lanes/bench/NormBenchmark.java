package dev.lanes.bench;

import dev.lanes.kernels.BatchNorm;
import dev.lanes.kernels.LayerNorm;
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
 * Normalization against the copy yardstick.
 *
 * <ul>
 *   <li>{@code batchnorm}: training batch norm over N32 C64 56x56 (a ResNet stage's activations).
 *   <li>{@code layernorm}: layer norm over 4096 rows of 1024 (a transformer's hidden states).
 *   <li>{@code forward} must at least read x and write y (8 bytes per element; the kernels read x
 *       three times, for the mean, the variance and the normalization, but the table counts only
 *       the bytes the operation cannot avoid); {@code backward} reads x and dy and writes dx (12).
 *   <li>{@code copy}: a copy of x (8 bytes per element) on {@code threads} threads
 *       ({@link ParallelCopy}), in the same run.
 * </ul>
 * Threads: {@code threads} (1 or 2); batch norm splits channels, layer norm rows (forward) and
 * fixed 32-row blocks (backward).
 */
@State(Scope.Benchmark)
public class NormBenchmark extends BenchmarkDefaults {
  @Param({"batchnorm", "layernorm"})
  public String kind;

  @Param({"1", "2"})
  public int threads;

  private Parallelism parallelism;
  private ParallelCopy copier;

  private int batch;
  private int channels;
  private int spatial;
  private Arena arena;
  private MemorySegment x;
  private MemorySegment y;
  private MemorySegment dy;
  private MemorySegment dx;
  private MemorySegment gamma;
  private MemorySegment beta;
  private MemorySegment mean;
  private MemorySegment rstd;
  private MemorySegment runningMean;
  private MemorySegment runningVar;
  private MemorySegment dgamma;
  private MemorySegment dbeta;

  /** Elements of x for a kind. */
  static long elements(String kind) {
    return kind.equals("batchnorm") ? 32L * 64 * 56 * 56 : 4096L * 1024;
  }

  @Setup(Level.Trial)
  public void setUp() {
    boolean bn = kind.equals("batchnorm");
    batch = bn ? 32 : 4096;
    channels = bn ? 64 : 1024;
    spatial = bn ? 56 * 56 : 1;
    long n = elements(kind);
    int parameters = channels;
    int groups = bn ? channels : batch;
    arena = Arena.ofShared();
    parallelism = Parallelism.threads(threads);
    copier = new ParallelCopy(threads);
    x = BenchData.uniform(arena, n, 1);
    dy = BenchData.uniform(arena, n, 2);
    y = BenchData.zeros(arena, n);
    dx = BenchData.zeros(arena, n);
    gamma = BenchData.uniform(arena, parameters, 3);
    beta = BenchData.uniform(arena, parameters, 4);
    mean = BenchData.zeros(arena, groups);
    rstd = BenchData.zeros(arena, groups);
    runningMean = BenchData.zeros(arena, parameters);
    runningVar = BenchData.uniform(arena, parameters, 5);
    dgamma = BenchData.zeros(arena, parameters);
    dbeta = BenchData.zeros(arena, parameters);
    forward();
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    copier.close();
    arena.close();
  }

  @Benchmark
  public MemorySegment forward() {
    if (spatial > 1) {
      BatchNorm.forwardTraining(batch, channels, spatial, 1e-5f, 0.1f, x, 0, gamma, 0, beta, 0, y, 0, mean, 0, rstd,
          0, runningMean, 0, runningVar, 0, parallelism);
    } else {
      LayerNorm.forward(batch, channels, 1e-5f, x, 0, gamma, 0, beta, 0, y, 0, mean, 0, rstd, 0, parallelism);
    }
    return y;
  }

  @Benchmark
  public MemorySegment backward() {
    if (spatial > 1) {
      BatchNorm.backward(batch, channels, spatial, x, 0, gamma, 0, mean, 0, rstd, 0, dy, 0, dx, 0, dgamma, 0, dbeta,
          0, parallelism);
    } else {
      LayerNorm.backward(batch, channels, x, 0, gamma, 0, mean, 0, rstd, 0, dy, 0, dx, 0, dgamma, 0, dbeta, 0,
          parallelism);
    }
    return dx;
  }

  @Benchmark
  public MemorySegment copy() {
    copier.copy(x, y, x.byteSize());
    return y;
  }
}
