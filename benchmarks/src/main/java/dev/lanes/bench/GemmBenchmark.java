package dev.lanes.bench;

import dev.lanes.kernels.Gemm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Transpose;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Square SGEMM, {@code C = A * B} with M = N = K = {@code size}, row-major, no transposes.
 *
 * <ul>
 *   <li>{@code lanes}: {@link Gemm#sgemm} on off-heap segments, up to {@code threads} threads.
 *   <li>{@code openblas}: {@code cblas_sgemm} from OpenBLAS (bytedeco) on the same off-heap
 *       buffers, with {@code blas_set_num_threads(threads)}. Off-heap on purpose: bytedeco's
 *       {@code float[]} overloads copy every array through JNI on each call, which measures the
 *       copy, not OpenBLAS.
 *   <li>{@code naive}: the plain i-j-p triple loop on {@code float[]}, single-threaded; the
 *       {@code lanes bench} table runs it only up to size 256.
 * </ul>
 * Each op is {@code 2 size^3} floating-point operations. The result matrix C is the benchmark's
 * output and is reachable from the state, so the JIT cannot drop the work; the setup checks that
 * Lanes and OpenBLAS agree, so both really compute the same product.
 */
@State(Scope.Benchmark)
public class GemmBenchmark extends BenchmarkDefaults {
  @Param({"64", "128", "256", "512", "1024", "2048"})
  public int size;

  @Param({"1", "2"})
  public int threads;

  private Arena arena;
  private MemorySegment a;
  private MemorySegment b;
  private MemorySegment cLanes;
  private MemorySegment cBlas;
  private FloatPointer aBlas;
  private FloatPointer bBlas;
  private FloatPointer cBlasPointer;
  private Parallelism parallelism;
  private float[] aArray;
  private float[] bArray;
  private float[] cArray;

  @Setup(Level.Trial)
  public void setUp() {
    int n = size;
    long bytes = (long) n * n * Float.BYTES;
    arena = Arena.ofShared();
    a = arena.allocate(bytes, 64);
    b = arena.allocate(bytes, 64);
    cLanes = arena.allocate(bytes, 64);
    cBlas = arena.allocate(bytes, 64);
    SplittableRandom random = new SplittableRandom(42);
    aArray = new float[n * n];
    bArray = new float[n * n];
    cArray = new float[n * n];
    for (int i = 0; i < n * n; i++) {
      aArray[i] = (float) (random.nextDouble() * 2 - 1);
      bArray[i] = (float) (random.nextDouble() * 2 - 1);
    }
    MemorySegment.copy(aArray, 0, a, ValueLayout.JAVA_FLOAT, 0, n * n);
    MemorySegment.copy(bArray, 0, b, ValueLayout.JAVA_FLOAT, 0, n * n);
    // Direct buffers over the same native memory: OpenBLAS reads A and B where Lanes does.
    aBlas = new FloatPointer(a.asByteBuffer().order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer());
    bBlas = new FloatPointer(b.asByteBuffer().order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer());
    cBlasPointer = new FloatPointer(cBlas.asByteBuffer().order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer());
    openblas_nolapack.blas_set_num_threads(threads);
    parallelism = Parallelism.threads(threads);
    lanes();
    openblas();
    crossCheck();
  }

  /** Both implementations must produce the same product, to within float rounding of a length-n sum. */
  private void crossCheck() {
    double tolerance = 4.0 * size * Math.scalb(1.0, -24) * size; // |A||B| <= size for entries in [-1, 1)
    for (long i = 0; i < (long) size * size; i++) {
      float x = cLanes.getAtIndex(ValueLayout.JAVA_FLOAT, i);
      float y = cBlas.getAtIndex(ValueLayout.JAVA_FLOAT, i);
      if (!(Math.abs(x - y) <= tolerance)) {
        throw new IllegalStateException("Lanes and OpenBLAS disagree at " + i + ": " + x + " vs " + y);
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public MemorySegment lanes() {
    Gemm.sgemm(Transpose.NONE, Transpose.NONE, size, size, size, 1f, a, 0, size, b, 0, size,
        0f, cLanes, 0, size, parallelism);
    return cLanes;
  }

  @Benchmark
  public MemorySegment openblas() {
    openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans,
        openblas_nolapack.CblasNoTrans, size, size, size, 1f, aBlas, size, bBlas, size, 0f,
        cBlasPointer, size);
    return cBlas;
  }

  @Benchmark
  public float[] naive() {
    int n = size;
    float[] x = aArray;
    float[] y = bArray;
    float[] z = cArray;
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        float sum = 0f;
        for (int p = 0; p < n; p++) {
          sum += x[i * n + p] * y[p * n + j];
        }
        z[i * n + j] = sum;
      }
    }
    return z;
  }
}
