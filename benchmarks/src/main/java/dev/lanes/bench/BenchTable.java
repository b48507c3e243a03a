package dev.lanes.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;

/**
 * Turns JMH results into the side-by-side table of {@code lanes bench}: one row per kernel, shape
 * and thread count, with Lanes and its native peer from the same run, their ratio, and Lanes' share
 * of this CPU's FP32 peak.
 *
 * <p>Every time is the median of the measurement iterations (the machines are shared and noisy,
 * and a median shrugs off a stolen time slice where a mean does not).
 */
final class BenchTable {
  /** Benchmark methods that are Lanes itself; all others are baselines. */
  private static final String LANES_METHOD = "lanes";
  /**
   * The benchmark methods that run a Lanes N^3 GEMM beside a GEMM-based kernel are named
   * {@code gemm<N>} ({@code gemm1024} beside convolution, {@code gemm512} beside the recurrent
   * cells).
   */
  private static final java.util.regex.Pattern GEMM_YARDSTICK = java.util.regex.Pattern.compile("gemm(\\d+)");

  /** This row's GEMM yardstick method, or null. */
  static String yardstick(Row row) {
    for (String method : row.secondsPerOp.keySet()) {
      if (GEMM_YARDSTICK.matcher(method).matches()) {
        return method;
      }
    }
    return null;
  }

  private final double peakPerThreadGflops;
  private final Map<String, Row> rows = new LinkedHashMap<>();

  BenchTable(double peakPerThreadGflops) {
    this.peakPerThreadGflops = peakPerThreadGflops;
  }

  /** One table row: a kernel at one shape and thread count, with every method measured for it. */
  static final class Row {
    final String kernel;
    final String shape;
    final int threads;
    final double flopsPerOp;
    final Workload workload;
    final Map<String, Double> secondsPerOp = new LinkedHashMap<>();
    final Map<String, Double> bytesPerOp = new LinkedHashMap<>();
    final Map<String, Double> loopBytesPerOp = new LinkedHashMap<>();
    /** Every measured iteration's seconds per op, of every run of the method (one per round). */
    private final Map<String, List<Double>> samples = new LinkedHashMap<>();
    private final Map<String, double[]> allocationSums = new LinkedHashMap<>();

    /** Adds one run's iterations and allocation figures; the row keeps their median and means. */
    void add(String method, RunResult result) {
      List<Double> seconds = samples.computeIfAbsent(method, m -> new ArrayList<>());
      seconds.addAll(iterationSeconds(result));
      secondsPerOp.put(method, median(seconds));
      // Sums and counts of gc.alloc.rate.norm and alloc.loop.norm, each run's mean weighted alike.
      double[] sums = allocationSums.computeIfAbsent(method, m -> new double[4]);
      Result alloc = result.getAggregatedResult().getSecondaryResults().get("gc.alloc.rate.norm");
      if (alloc != null) {
        sums[0] += alloc.getScore();
        sums[1]++;
        bytesPerOp.put(method, sums[0] / sums[1]);
      }
      Result loopAlloc = result.getAggregatedResult().getSecondaryResults().get("alloc.loop.norm");
      if (loopAlloc != null) {
        sums[2] += loopAlloc.getScore();
        sums[3]++;
        loopBytesPerOp.put(method, sums[2] / sums[3]);
      }
    }

    Row(String kernel, int threads, Workload workload) {
      this.kernel = kernel;
      this.shape = workload.shape;
      this.threads = threads;
      this.flopsPerOp = workload.flops;
      this.workload = workload;
    }

    /**
     * The allocation column: bytes per op inside JMH's measured loop ({@link LoopAllocationProfiler}),
     * then in parentheses JMH's whole-JVM {@code gc.alloc.rate.norm}, which adds JMH's own
     * per-iteration bookkeeping spread over the iteration's ops.
     */
    String allocation(String method) {
      Double jmh = bytesPerOp.get(method);
      Double loop = loopBytesPerOp.get(method);
      if (jmh == null && loop == null) {
        return "-";
      }
      return number(loop == null ? Double.NaN : loop, "%.0f") + " (" + number(jmh == null ? Double.NaN : jmh, "%.0f") + ")";
    }

    double gflops(String method) {
      Double seconds = secondsPerOp.get(method);
      return seconds == null ? Double.NaN : flopsPerOp / seconds / 1e9;
    }
  }

  void addAll(Collection<RunResult> results) {
    for (RunResult result : results) {
      BenchmarkParams params = result.getParams();
      String name = params.getBenchmark();
      String method = name.substring(name.lastIndexOf('.') + 1);
      String className = name.substring(0, name.lastIndexOf('.'));
      String kernel = className.substring(className.lastIndexOf('.') + 1).replace("Benchmark", "");
      Workload workload = Workload.of(kernel, params);
      String threadsParam = params.getParamsKeys().contains("threads") ? params.getParam("threads") : null;
      int threads = threadsParam == null ? 1 : Integer.parseInt(threadsParam);
      String key = kernel + "|" + workload.shape + "|" + threads;
      Row row = rows.computeIfAbsent(key, k -> new Row(kernel, threads, workload));
      row.add(method, result);
    }
  }

  /** Each measurement iteration's score, converted to seconds per operation. */
  private static List<Double> iterationSeconds(RunResult result) {
    List<Double> seconds = new ArrayList<>();
    for (BenchmarkResult br : result.getBenchmarkResults()) {
      for (IterationResult ir : br.getIterationResults()) {
        seconds.add(ir.getPrimaryResult().getScore() * secondsPer(ir.getPrimaryResult().getScoreUnit()));
      }
    }
    return seconds;
  }

  private static double median(List<Double> values) {
    double[] sorted = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return sorted.length % 2 == 1 ? sorted[sorted.length / 2]
        : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  }

  private static double secondsPer(String unit) {
    return switch (unit) {
      case "s/op" -> 1;
      case "ms/op" -> 1e-3;
      case "us/op" -> 1e-6;
      case "ns/op" -> 1e-9;
      default -> throw new IllegalStateException("unexpected JMH unit " + unit);
    };
  }

  String render() {
    return renderCompute() + renderAgainstGemm() + renderMemory();
  }

  /** Memory-bound kernels: time per op against the copy yardstick moving the same bytes. */
  private String renderMemory() {
    StringBuilder out = new StringBuilder();
    for (Row row : rows.values()) {
      if (!row.secondsPerOp.containsKey("copy")) {
        continue;
      }
      if (out.isEmpty()) {
        String header = String.format(Locale.ROOT, "%n%-8s %-16s %7s %-18s %10s %8s %14s %8s %15s",
            "kernel", "shape", "threads", "op", "Lanes us", "GB/s", "copy-time us", "x copy", "B/op loop (JMH)");
        out.append(header).append('\n').append("-".repeat(header.length() - 1)).append('\n');
      }
      double copySeconds = row.secondsPerOp.get("copy");
      double copyBytes = row.workload.bytes(row.kernel, "copy");
      for (Map.Entry<String, Double> e : row.secondsPerOp.entrySet()) {
        String op = e.getKey();
        if (op.equals("copy")) {
          continue;
        }
        double bytes = row.workload.bytes(row.kernel, op);
        double yardstick = copySeconds * bytes / copyBytes;
        out.append(String.format(Locale.ROOT, "%-8s %-16s %7d %-18s %10.1f %8.1f %14.1f %8.2f %15s%n",
            row.kernel, row.shape, row.threads, op, e.getValue() * 1e6, bytes / e.getValue() / 1e9, yardstick * 1e6,
            e.getValue() / yardstick, row.allocation(op)));
      }
      out.append(String.format(Locale.ROOT, "%-8s %-16s %7d %-18s %10.1f %8.1f %14s %8s %15s%n", row.kernel,
          row.shape, row.threads, "copy", copySeconds * 1e6, copyBytes / copySeconds / 1e9, "-", "1.00",
          row.allocation("copy")));
    }
    return out.toString();
  }

  private String renderCompute() {
    String header = String.format(Locale.ROOT, "%-8s %-16s %7s %12s %14s %8s %12s %8s %15s %15s",
        "kernel", "shape", "threads", "Lanes GF/s", "OpenBLAS GF/s", "ratio", "naive GF/s", "% peak",
        "Lanes B/op", "OpenBLAS B/op");
    StringBuilder out = new StringBuilder();
    for (Row row : rows.values()) {
      if (Double.isNaN(row.flopsPerOp) || yardstick(row) != null) {
        continue;
      }
      if (out.isEmpty()) {
        out.append(header).append('\n').append("-".repeat(header.length())).append('\n');
      }
      double lanes = row.gflops(LANES_METHOD);
      double peer = row.gflops("openblas");
      double peak = peakPerThreadGflops * row.threads;
      out.append(String.format(Locale.ROOT, "%-8s %-16s %7d %12s %14s %8s %12s %8s %15s %15s%n",
          row.kernel, row.shape, row.threads, number(lanes, "%.1f"), number(peer, "%.1f"),
          number(lanes / peer, "%.2f"), number(row.gflops("naive"), "%.2f"),
          number(100 * lanes / peak, "%.0f%%"), row.allocation(LANES_METHOD),
          row.allocation("openblas")));
    }
    return out.toString();
  }

  /**
   * GEMM-based kernels (convolution, recurrent cells): each pass's GFLOPS against Lanes' own
   * 1024^3 GEMM on the same threads in the same run, the ratio their targets are stated in.
   */
  private String renderAgainstGemm() {
    StringBuilder out = new StringBuilder();
    for (Row row : rows.values()) {
      String yardstick = yardstick(row);
      if (yardstick == null) {
        continue;
      }
      double size = Double.parseDouble(yardstick.substring(4));
      double gemmSeconds = row.secondsPerOp.get(yardstick);
      if (out.isEmpty()) {
        String header = String.format(Locale.ROOT, "%n%-8s %-10s %7s %-16s %11s %14s %8s %8s %15s", "kernel", "shape",
            "threads", "op", "Lanes GF/s", "GEMM-N GF/s", "ratio", "% peak", "B/op loop (JMH)");
        out.append(header).append('\n').append("-".repeat(header.length() - 1)).append('\n');
      }
      double gemm = 2.0 * size * size * size / gemmSeconds / 1e9;
      for (Map.Entry<String, Double> e : row.secondsPerOp.entrySet()) {
        if (e.getKey().equals(yardstick)) {
          continue;
        }
        double gflops = row.workload.flops(e.getKey()) / e.getValue() / 1e9;
        out.append(String.format(Locale.ROOT, "%-8s %-10s %7d %-16s %11.1f %14.1f %8.2f %8s %15s%n", row.kernel,
            row.shape, row.threads, e.getKey(), gflops, gemm, gflops / gemm,
            number(100 * gflops / (peakPerThreadGflops * row.threads), "%.0f%%"), row.allocation(e.getKey())));
      }
      out.append(String.format(Locale.ROOT, "%-8s %-10s %7d %-16s %11s %14.1f %8s %8s %15s%n", row.kernel, row.shape,
          row.threads, yardstick, "-", gemm, "1.00", number(100 * gemm / (peakPerThreadGflops * row.threads),
          "%.0f%%"), row.allocation(yardstick)));
    }
    return out.toString();
  }

  private static String number(double x, String format) {
    return Double.isNaN(x) ? "-" : String.format(Locale.ROOT, format, x);
  }

  /**
   * What one operation of a benchmark computes, from its parameters: flops for compute-bound
   * kernels (NaN otherwise), and for memory-bound ones the bytes each op must at least read plus
   * write (4 per float or int touched), by method.
   */
  record Workload(String shape, double flops, Map<String, Double> bytesByOp, Map<String, Double> flopsScale) {
    Workload(String shape, double flops, Map<String, Double> bytesByOp) {
      this(shape, flops, bytesByOp, Map.of());
    }

    /** Flops of one op of this method: the row's flops, times the method's scale if it has one. */
    double flops(String method) {
      return flops * flopsScale.getOrDefault(method, 1.0);
    }

    static Workload of(String kernel, BenchmarkParams params) {
      switch (kernel) {
        case "Gemm" -> {
          int n = Integer.parseInt(params.getParam("size"));
          return new Workload(n + "x" + n + "x" + n, 2.0 * n * n * n, Map.of());
        }
        case "Softmax" -> {
          String shape = params.getParam("shape");
          String[] parts = shape.split("x");
          double elements = Double.parseDouble(parts[0]) * Double.parseDouble(parts[1]);
          // forward reads x, writes y; backward reads y and dy, writes dx; copy reads and writes.
          double rows = Double.parseDouble(parts[0]);
          return new Workload(shape, Double.NaN, Map.of("forward", 8 * elements, "backward", 12 * elements,
              "crossEntropy", 8 * elements + 4 * rows, "copy", 8 * elements));
        }
        case "Activation" -> {
          double elements = ActivationBenchmark.ELEMENTS;
          return new Workload(params.getParam("fn"), Double.NaN,
              Map.of("forward", 8 * elements, "backward", 12 * elements, "copy", 8 * elements));
        }
        case "Norm" -> {
          double elements = NormBenchmark.elements(params.getParam("kind"));
          return new Workload(params.getParam("kind"), Double.NaN,
              Map.of("forward", 8 * elements, "backward", 12 * elements, "copy", 8 * elements));
        }
        case "Adam" -> {
          double n = AdamBenchmark.PARAMETERS;
          return new Workload(params.getParam("size"), Double.NaN, Map.of("adam", 28 * n, "copy", 8 * n));
        }
        case "Lstm", "Gru" -> {
          int gates = kernel.equals("Lstm") ? 4 : 3;
          // 2 T B gates*H (I + H) for the forward; forward plus backward is three times that.
          double flops = 2.0 * RecurrentBenchmarkBase.T * RecurrentBenchmarkBase.B * gates * RecurrentBenchmarkBase.H
              * (RecurrentBenchmarkBase.I + RecurrentBenchmarkBase.H);
          return new Workload("T50 B64 I256 H256", flops, Map.of(), Map.of("forwardBackward", 3.0));
        }
        case "Conv2d" -> {
          return new Workload(params.getParam("shape"), Conv2dBenchmark.shape(params.getParam("shape")).flops(),
              Map.of());
        }
        case "Conv1d" -> {
          return new Workload(params.getParam("shape"), Conv1dBenchmark.shape(params.getParam("shape")).flops(),
              Map.of());
        }
        case "Pool" -> {
          String kind = params.getParam("kind");
          dev.lanes.kernels.Pool2d pool = PoolBenchmark.shape(kind);
          double in = 4.0 * pool.inputFloats();
          double out = 4.0 * pool.outputFloats();
          double index = kind.startsWith("max") ? out : 0; // the int32 argmax, written then read
          return new Workload(kind, Double.NaN, Map.of("forward", in + out + index, "backward",
              out + index + in, "copy", 2 * in));
        }
        default -> throw new IllegalArgumentException("no workload model for benchmark " + kernel + " with "
            + Arrays.toString(params.getParamsKeys().toArray()));
      }
    }

    double bytes(String kernel, String op) {
      // An op's cached variant does the op's work on data held in cache, and is held to its bytes.
      String counted = op.endsWith("Cached") ? op.substring(0, op.length() - "Cached".length()) : op;
      Double bytes = bytesByOp.get(counted);
      if (bytes == null) {
        throw new IllegalArgumentException("no byte model for " + kernel + "." + op);
      }
      return bytes;
    }
  }
}
