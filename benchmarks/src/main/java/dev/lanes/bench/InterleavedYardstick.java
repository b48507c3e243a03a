package dev.lanes.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code ./lanes yardstick KERNEL}: a GEMM-based kernel and its GEMM yardstick (the {@code GEMM-N}
 * rows of {@code ./lanes bench}), call by call in turn in one JVM, on the same threads. It uses
 * the JMH benchmarks' own state classes, so the operands and calls are exactly the table's.
 *
 * <p>Why: the table's GEMM-N ratio divides two JMH benchmarks run minutes apart, and on a shared
 * machine a core's speed changes for seconds at a time (see {@link InterleavedGemm}). Measured on
 * a Zen 3 VM: the LSTM's forward plus backward read 0.56 (one thread) of GEMM-512 in a JMH table,
 * and 0.85-0.90 alternating with it. Unlike the OpenBLAS comparison, two threads are fair here:
 * both sides are Lanes, and its pool's workers park between calls.
 */
@Command(name = "yardstick", mixinStandardHelpOptions = true,
    description = "A GEMM-based kernel against Lanes' own N^3 GEMM (its table yardstick), alternating "
        + "call by call in one JVM; prints each round's GEMM-N ratios and their medians.")
final class InterleavedYardstick implements Callable<Integer> {
  @Parameters(paramLabel = "KERNEL", description = "lstm, gru, conv-resnet or conv-lenet.")
  String kernel;

  @Option(names = "--threads", split = ",", defaultValue = "1,2",
      description = "Thread counts, one after the other (default: ${DEFAULT-VALUE}).")
  int[] threads;

  @Option(names = "--rounds", defaultValue = "6", description = "Rounds (default: ${DEFAULT-VALUE}).")
  int rounds;

  @Option(names = "--calls", defaultValue = "4", description = "Calls of each op per round; the best "
      + "counts (default: ${DEFAULT-VALUE}).")
  int calls;

  /** One measured operation: its name, flops per call, and the call. */
  private record Op(String name, double flops, Runnable call) {}

  /** The ops of one benchmark state, the yardstick last, and how to release the state. */
  private record Setup(List<Op> ops, Runnable tearDown) {}

  @Override
  public Integer call() {
    System.out.println("kernel       threads  round  op                Lanes GF/s  GEMM-N GF/s  ratio");
    for (int t : threads) {
      Setup setup = setUp(kernel, t);
      List<Op> ops = setup.ops();
      Op gemm = ops.get(ops.size() - 1);
      int kernels = ops.size() - 1;
      double[][] ratios = new double[kernels][rounds];
      try {
        // Round 0 warms everything up (JIT, page faults); it is printed but not counted.
        for (int round = 0; round <= rounds; round++) {
          long[] best = new long[ops.size()];
          Arrays.fill(best, Long.MAX_VALUE);
          for (int c = 0; c < calls; c++) {
            for (int i = 0; i < ops.size(); i++) {
              long start = System.nanoTime();
              ops.get(i).call().run();
              best[i] = Math.min(best[i], System.nanoTime() - start);
            }
          }
          double gemmRate = gemm.flops() / best[kernels];
          for (int i = 0; i < kernels; i++) {
            double rate = ops.get(i).flops() / best[i];
            if (round > 0) {
              ratios[i][round - 1] = rate / gemmRate;
            }
            System.out.printf(Locale.ROOT, "%-12s %7d  %5s  %-16s  %10.1f  %11.1f  %5.2f%n", kernel, t,
                round == 0 ? "warm" : "" + round, ops.get(i).name(), rate, gemmRate, rate / gemmRate);
          }
        }
      } finally {
        setup.tearDown().run();
      }
      for (int i = 0; i < kernels; i++) {
        System.out.printf(Locale.ROOT, "%-12s %7d  median %-16s %s vs %s%n", kernel, t, ops.get(i).name(),
            RoundRatios.summary(ratios[i]), gemm.name());
      }
    }
    System.out.println("ratio = the op's GFLOPS / the GEMM's GFLOPS, best call of each in the same round.");
    return 0;
  }

  private static Setup setUp(String kernel, int threads) {
    List<Op> ops = new ArrayList<>();
    switch (kernel) {
      case "lstm", "gru" -> {
        RecurrentBenchmarkBase b = kernel.equals("lstm") ? new LstmBenchmark() : new GruBenchmark();
        b.threads = threads;
        b.setUp();
        int gates = kernel.equals("lstm") ? 4 : 3;
        // 2 T B gates*H (I + H) for the forward; forward plus backward is three times that.
        double forward = 2.0 * RecurrentBenchmarkBase.T * RecurrentBenchmarkBase.B * gates
            * RecurrentBenchmarkBase.H * (RecurrentBenchmarkBase.I + RecurrentBenchmarkBase.H);
        if (b instanceof LstmBenchmark lstm) {
          ops.add(new Op("forward", forward, lstm::forward));
          ops.add(new Op("forwardBackward", 3 * forward, lstm::forwardBackward));
        } else {
          GruBenchmark gru = (GruBenchmark) b;
          ops.add(new Op("forward", forward, gru::forward));
          ops.add(new Op("forwardBackward", 3 * forward, gru::forwardBackward));
        }
        ops.add(new Op("gemm512", 2.0 * 512 * 512 * 512, b::gemm512));
        return new Setup(ops, b::tearDown);
      }
      case "conv-resnet", "conv-lenet" -> {
        Conv2dBenchmark b = new Conv2dBenchmark();
        b.shape = kernel.substring("conv-".length());
        b.threads = threads;
        b.setUp();
        double flops = Conv2dBenchmark.shape(b.shape).flops();
        ops.add(new Op("forward", flops, b::forward));
        ops.add(new Op("backwardData", flops, b::backwardData));
        ops.add(new Op("backwardWeights", flops, b::backwardWeights));
        ops.add(new Op("gemm1024", 2.0 * 1024 * 1024 * 1024, b::gemm1024));
        return new Setup(ops, b::tearDown);
      }
      default -> throw new IllegalArgumentException(
          "unknown kernel '" + kernel + "': expected lstm, gru, conv-resnet or conv-lenet");
    }
  }
}
