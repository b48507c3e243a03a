package dev.lanes.bench;

import dev.lanes.kernels.Gemm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Transpose;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ./lanes interleaved}: Lanes and OpenBLAS SGEMM on one thread, call by call in turn in one
 * JVM, so both meet the same machine at the same moment.
 *
 * <p>Why beside JMH: on a shared machine the speed available to one core changes for seconds at a
 * time. Measured on a Zen 3 VM, Lanes' 1024^3 product read 40 GFLOPS in one stretch and 67 in the
 * next, OpenBLAS 68 and 79 in the same stretches. JMH runs one benchmark method after the other,
 * so a table can pair a slow stretch of one with a fast stretch of the other. Here every round
 * takes the best call of each over the same seconds, and the table gives each round's ratio and
 * their median.
 *
 * <p>On more than one thread ({@code --threads 2}) every call is followed by a pause
 * ({@code --pause-ms}, 150 by default there). Without it OpenBLAS's worker threads, which keep
 * spinning for a while after a call, took the second core from Lanes' next call (measured: Lanes'
 * two-thread 1024^3 product fell from about 80 to 55 GFLOPS when alternated with OpenBLAS's).
 * Lanes' workers spin briefly too, so both libraries get the pause; each then pays for waking its
 * parked workers, a few microseconds against calls of milliseconds at the default sizes.
 */
@Command(name = "interleaved", mixinStandardHelpOptions = true,
    description = "Lanes vs OpenBLAS SGEMM, alternating call by call in one JVM; "
        + "prints each round's ratio and the median.")
final class InterleavedGemm implements Callable<Integer> {
  @Option(names = "--sizes", split = ",", defaultValue = "256,512,1024,2048",
      description = "Square sizes n of the n^3 products (default: ${DEFAULT-VALUE}).")
  int[] sizes;

  @Option(names = "--rounds", defaultValue = "8", description = "Rounds per size (default: ${DEFAULT-VALUE}).")
  int rounds;

  @Option(names = "--seconds", defaultValue = "1", description = "Seconds of calls per round and library "
      + "(default: ${DEFAULT-VALUE}).")
  double seconds;

  @Option(names = "--threads", defaultValue = "1", description = "Threads for both libraries (default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--pause-ms", description = "Pause after every call, so that neither library's "
      + "spinning workers slow the other's next call (default: 0 on one thread, 150 on more).")
  Integer pauseMs;

  @Override
  public Integer call() throws InterruptedException {
    openblas_nolapack.blas_set_num_threads(threads);
    Parallelism parallelism = Parallelism.threads(threads);
    long pause = pauseMs != null ? pauseMs : threads == 1 ? 0 : 150;
    System.out.printf(Locale.ROOT, "%d thread(s), %d ms pause after each call%n", threads, pause);
    System.out.println(OpenBlasCore.describe());
    System.out.println("size  round   Lanes GF/s  OpenBLAS GF/s  ratio");
    for (int n : sizes) {
      // Shared, not confined: Lanes runs a call on one thread when a worker could not touch the segments.
      try (Arena arena = Arena.ofShared()) {
        Operands ops = new Operands(arena, n);
        double flops = 2.0 * n * n * n;
        int calls = (int) Math.max(3, Math.min(pause > 0 ? 6 : 1000, seconds * 5e10 * threads / flops));
        double[] ratios = new double[rounds];
        // The first round warms both up (JIT, page faults); it is printed but not counted. It runs
        // for at least --seconds however small the product: at 64^3 a round of 1000 calls lasts a
        // few ms, and in rounds that short the code around Lanes' kernel was still C1's profiled
        // code for the first five rounds (0.79-0.86 of OpenBLAS, then 0.94 once C2 had it).
        long warmUntil = System.nanoTime() + (long) (seconds * 1e9);
        for (int round = 0; round <= rounds; round++) {
          long lanes = Long.MAX_VALUE;
          long blas = Long.MAX_VALUE;
          for (int c = 0; c < calls || round == 0 && System.nanoTime() < warmUntil; c++) {
            long t = System.nanoTime();
            ops.lanes(parallelism);
            lanes = Math.min(lanes, System.nanoTime() - t);
            Thread.sleep(pause);
            t = System.nanoTime();
            ops.openblas();
            blas = Math.min(blas, System.nanoTime() - t);
            Thread.sleep(pause);
          }
          double ratio = (double) blas / lanes;
          if (round > 0) {
            ratios[round - 1] = ratio;
          }
          System.out.printf(Locale.ROOT, "%4d  %5s  %11.1f  %13.1f  %5.2f%n", n, round == 0 ? "warm" : "" + round,
              flops / lanes, flops / blas, ratio);
        }
        System.out.printf(Locale.ROOT, "%4d  median %s%n", n, RoundRatios.summary(ratios));
      }
    }
    System.out.println("ratio = Lanes GFLOPS / OpenBLAS GFLOPS, best call of each in the same round.");
    return 0;
  }

  /** A, B and the two results in off-heap memory, with OpenBLAS's pointers over the same bytes. */
  private static final class Operands {
    final int n;
    final MemorySegment a;
    final MemorySegment b;
    final MemorySegment cLanes;
    final FloatPointer aBlas;
    final FloatPointer bBlas;
    final FloatPointer cBlas;

    Operands(Arena arena, int n) {
      this.n = n;
      long bytes = 4L * n * n;
      a = arena.allocate(bytes, 64);
      b = arena.allocate(bytes, 64);
      cLanes = arena.allocate(bytes, 64);
      MemorySegment c2 = arena.allocate(bytes, 64);
      SplittableRandom random = new SplittableRandom(42);
      for (long i = 0; i < (long) n * n; i++) {
        a.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (random.nextDouble() * 2 - 1));
        b.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (random.nextDouble() * 2 - 1));
      }
      aBlas = new FloatPointer(a.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
      bBlas = new FloatPointer(b.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
      cBlas = new FloatPointer(c2.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
    }

    void lanes(Parallelism parallelism) {
      Gemm.sgemm(Transpose.NONE, Transpose.NONE, n, n, n, 1f, a, 0, n, b, 0, n, 0f, cLanes, 0, n, parallelism);
    }

    void openblas() {
      openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans,
          openblas_nolapack.CblasNoTrans, n, n, n, 1f, aBlas, n, bBlas, n, 0f, cBlas, n);
    }
  }
}
