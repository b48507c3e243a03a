package dev.lanes.bench;

import dev.lanes.kernels.Gemm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * The {@code lanes} command. {@code ./lanes bench} runs the JMH suite and prints the comparison
 * table; {@code ./lanes interleaved} alternates Lanes' and OpenBLAS's SGEMM call by call
 * ({@link InterleavedGemm}), and {@code ./lanes yardstick} a GEMM-based kernel and its GEMM
 * yardstick ({@link InterleavedYardstick}).
 */
@Command(name = "lanes", mixinStandardHelpOptions = true, subcommands = {LanesCli.Bench.class, InterleavedGemm.class, InterleavedYardstick.class,
    RoundRobinRun.Child.class},
    description = "Lanes: pure-Java deep-learning kernels.")
public final class LanesCli {
  private LanesCli() {}

  /**
   * The benchmarks {@code lanes bench} knows, each a set of methods run together, in alternating rounds,
   * with parameter overrides. Later kernels add their groups here.
   *
   * <p>A GEMM yardstick comes first in its group: the quick configuration runs a group's methods
   * in one JVM ({@link RoundRobinRun}), and there the GEMM's code is then compiled from its own
   * N^3 calls, as in a JMH fork of its own, before the kernel's differently shaped calls reach it.
   */
  private static final List<Group> GROUPS = List.of(
      new Group("gemm", GemmBenchmark.class, "size", List.of("lanes", "openblas"), java.util.Map.of()),
      // The naive loop takes minutes per op at the large sizes; it is a floor, not a contender.
      new Group("gemm-naive", GemmBenchmark.class, "size", List.of("naive"),
          java.util.Map.of("size", new String[] {"64", "128", "256"}, "threads", new String[] {"1"})),
      new Group("softmax", SoftmaxBenchmark.class, "shape",
          List.of("forward", "backward", "crossEntropy", "forwardCached", "crossEntropyCached", "copy"), java.util.Map.of()),
      new Group("conv2d", Conv2dBenchmark.class, "shape",
          List.of("gemm1024", "forward", "backwardData", "backwardWeights"), java.util.Map.of()),
      new Group("conv1d", Conv1dBenchmark.class, "shape",
          List.of("gemm1024", "forward", "backwardData", "backwardWeights"), java.util.Map.of()),
      new Group("pool", PoolBenchmark.class, "kind", List.of("forward", "backward", "copy"), java.util.Map.of()),
      new Group("activation", ActivationBenchmark.class, "fn",
          List.of("forward", "backward", "forwardCached", "copy"), java.util.Map.of()),
      new Group("norm", NormBenchmark.class, "kind", List.of("forward", "backward", "copy"), java.util.Map.of()),
      new Group("adam", AdamBenchmark.class, "size", List.of("adam", "copy"), java.util.Map.of()),
      // A cold recurrent call takes seconds (the vector code runs interpreted and boxed until C2 has
      // compiled each per-step pass), and a fork that measured after 2.5 s of warm-up still boxed
      // 4 MB per forwardBackward in one of its calls: these groups warm up for 20 x 500 ms.
      new Group("lstm", LstmBenchmark.class, "threads", List.of("gemm512", "forward", "forwardBackward"),
          java.util.Map.of(), 20),
      new Group("gru", GruBenchmark.class, "threads", List.of("gemm512", "forward", "forwardBackward"),
          java.util.Map.of(), 20));

  /**
   * Methods of one benchmark class run together; {@code split} names the parameter whose values
   * get one run each (one JVM, in rounds, in the quick configuration), so that Lanes and its
   * yardstick at one shape are measured close in time.
   */
  record Group(String id, Class<?> benchmark, String split, List<String> methods,
      java.util.Map<String, String[]> params, int warmupIterations) {
    /** Five warm-up iterations of 500 ms in the quick configuration's first round. */
    Group(String id, Class<?> benchmark, String split, List<String> methods, java.util.Map<String, String[]> params) {
      this(id, benchmark, split, methods, params, 5);
    }

    /**
     * The values of parameter {@code name} this group runs for a {@code -p} request: where the
     * group limits the parameter (the naive GEMM to sizes up to 256 and one thread), only the
     * requested values inside that limit, so {@code -p size=2048} does not start a naive loop that
     * takes minutes per call. Empty: the group has nothing to run for the request.
     */
    String[] allowed(String name, String requested) {
      String[] values = requested.split(",");
      if (!params.containsKey(name)) {
        return values;
      }
      List<String> limit = List.of(params.get(name));
      return java.util.Arrays.stream(values).filter(limit::contains).toArray(String[]::new);
    }

    /** Whether some {@code -p} request leaves this group no value of one of its own parameters. */
    boolean excludedBy(java.util.Map<String, String> overrides) {
      return overrides.entrySet().stream()
          .anyMatch(e -> hasParameter(e.getKey()) && allowed(e.getKey(), e.getValue()).length == 0);
    }

    /** Whether the benchmark has a parameter of this name (-p may name another benchmark's). */
    boolean hasParameter(String name) {
      try {
        benchmark.getField(name);
        return true;
      } catch (NoSuchFieldException notOurs) {
        return false;
      }
    }

    List<String> methodsMatching(Pattern filter) {
      List<String> names = new ArrayList<>();
      for (String method : methods) {
        String name = benchmark.getName() + "." + method;
        if (filter.matcher(name).find()) {
          names.add(name);
        }
      }
      return names;
    }
  }

  /** The group of {@code lanes bench} with this id. */
  static Group group(String id) {
    for (Group group : GROUPS) {
      if (group.id.equals(id)) {
        return group;
      }
    }
    throw new IllegalArgumentException("no benchmark group " + id);
  }

  public static void main(String[] args) {
    System.exit(new CommandLine(new LanesCli()).execute(args));
  }

  @Command(name = "bench", mixinStandardHelpOptions = true,
      description = "Run the benchmarks (Lanes and its baselines in alternating rounds) and print the table.")
  static final class Bench implements Callable<Integer> {
    @Parameters(arity = "0..1", paramLabel = "REGEX",
        description = "Only benchmarks whose name matches, e.g. 'Gemm' or 'Gemm.lanes'. Default: all.")
    String regex = ".*";

    @Option(names = "--full", description = "JMH's longer configuration (more and longer iterations), one "
        + "JMH fork per method, "
        + "instead of the quick one (about 20 minutes on 2 cores for the whole suite).")
    boolean full;

    @Option(names = {"-p", "--param"}, paramLabel = "NAME=V1,V2",
        description = "Override a JMH parameter, as JMH's -p does, e.g. -p size=256,1024 -p threads=1.")
    java.util.Map<String, String> paramOverrides = new java.util.LinkedHashMap<>();

    @Option(names = "--rounds", defaultValue = "5",
        description = "Rounds of the quick configuration: each round runs one 500 ms JMH iteration of every "
            + "method of a group in turn, in one JVM, so a ratio's two sides are measured a second apart "
            + "(default: ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--fma-ports", defaultValue = "2",
        description = "FMA units per core used for %% of peak (default: ${DEFAULT-VALUE}).")
    int fmaPorts;

    @Option(names = "--result", defaultValue = "benchmarks/target/bench-result.json",
        description = "Where to keep JMH's raw results as JSON (default: ${DEFAULT-VALUE}).")
    Path resultFile;

    @Override
    public Integer call() throws Exception {
      // The clock of a shared VM moves with its neighbours' load (2.5 to 3.8 GHz seen here), so it
      // is read before and after the run, and the higher reading sets the peak: % of peak errs low.
      double ghzBefore = ClockProbe.measureGhz();
      int lanes = Gemm.vectorBits() / Float.SIZE;

      List<RunResult> results = new ArrayList<>();
      Pattern filter = Pattern.compile(regex);
      for (Group group : GROUPS) {
        List<String> methods = group.methodsMatching(filter);
        if (methods.isEmpty() || group.excludedBy(paramOverrides)) {
          continue;
        }
        // One run per size, so Lanes and its peer at a size are measured seconds apart, not
        // minutes: the clock of a shared VM drifts, and the ratio must not absorb that drift.
        for (String value : splitValues(group)) {
          results.addAll(run(group, methods, value));
        }
      }
      if (results.isEmpty()) {
        System.err.println("no benchmark matches " + regex);
        return 2;
      }
      double ghzAfter = ClockProbe.measureGhz();
      double ghz = Math.max(ghzBefore, ghzAfter);
      double peakPerThread = lanes * 2.0 * fmaPorts * ghz;
      System.out.printf(Locale.ROOT, "%nClock measured %.2f GHz before and %.2f GHz after the run.%n", ghzBefore, ghzAfter);
      System.out.println(OpenBlasCore.describe());
      System.out.printf(Locale.ROOT, "FP32 peak per core: %d lanes x 2 (FMA) x %d FMA ports x %.2f GHz = %.0f GFLOPS%n",
          lanes, fmaPorts, ghz, peakPerThread);
      BenchTable table = new BenchTable(peakPerThread);
      table.addAll(results);
      System.out.println();
      System.out.print(table.render());
      System.out.println();
      System.out.println("GF/s and us from the median JMH iteration (quick: over the rounds); ratio = Lanes / OpenBLAS (GEMM rows) or");
      System.out.println("Lanes / Lanes' own N^3 GEMM on the same threads (GEMM-N rows: convolution, LSTM, GRU), same rounds;");
      System.out.println("% peak = Lanes / (peak per core x threads).");
      System.out.println("B/op: first what the benchmark's threads allocate inside JMH's measured loop, per op; in");
      System.out.println("parentheses JMH's gc.alloc.rate.norm, which counts the whole JVM and so adds JMH's own ~7 KB per");
      System.out.println("iteration spread over its ops (the copy and OpenBLAS controls show that share).");
      System.out.println("x copy = time / (copy time for the same bytes, same rounds); the target is <= 2.");
      System.out.println("Raw JMH results: " + resultFile.toString().replace(".json", "-*.json"));
      return 0;
    }

    /** Values of the group's split parameter: the -p override, the group's own, or the @Param values. */
    private List<String> splitValues(Group group) throws NoSuchFieldException {
      if (paramOverrides.containsKey(group.split)) {
        return List.of(group.allowed(group.split, paramOverrides.get(group.split)));
      }
      if (group.params.containsKey(group.split)) {
        return List.of(group.params.get(group.split));
      }
      return List.of(group.benchmark.getField(group.split).getAnnotation(org.openjdk.jmh.annotations.Param.class).value());
    }

    private Collection<RunResult> run(Group group, List<String> methods, String value) throws Exception {
      if (!full) {
        return RoundRobinRun.inChildJvm(group, methods, value, paramOverrides, rounds, resultFile);
      }
      ChainedOptionsBuilder options = RoundRobinRun.groupOptions(group, methods, value, paramOverrides);
      Path file = resultFile.resolveSibling(resultFile.getFileName().toString().replace(".json", "-" + group.id + "-" + value + ".json"));
      Files.createDirectories(file.toAbsolutePath().getParent());
      return new Runner(options.result(file.toString()).resultFormat(ResultFormatType.JSON).build()).run();
    }
  }
}
