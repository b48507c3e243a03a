package dev.lanes.bench;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.profile.GCProfiler;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * The quick {@code lanes bench}: one group at one split value (for example the LSTM's methods on two
 * threads) measured in rounds, each round one short JMH iteration of every method in turn, all in one
 * fresh JVM.
 *
 * <p>Why rounds: a ratio in the table divides two medians, and on a shared VM the speed a core gets
 * moves by up to 2x for minutes at a time. With one JMH fork per method, the kernel and its
 * yardstick (its own GEMM, or a copy of the same bytes) ran 10 to 40 s apart, and the same code
 * read 0.80 in one table and 0.53 in the next because the machine had sped up between the two
 * forks. Rounds put the methods of one ratio a second apart, every round; a slow stretch then slows
 * both sides of some rounds, and the medians over the rounds keep their ratio.
 *
 * <p>Why one JVM per group and split, not the {@code lanes} JVM: the kernels' JIT profiles stay
 * those of one benchmark, as in a JMH fork (four activation functions through one call site, say,
 * would otherwise leave it megamorphic for the benchmarks after them). Inside that JVM JMH runs
 * without forking ({@code forks(0)}), so the code warmed in the first round stays compiled for the
 * next ones, which need only a short warm-up after their trial set-up.
 */
final class RoundRobinRun {
  private RoundRobinRun() {}

  /** The JMH options every run of {@code group} at {@code value} shares: profilers, methods, parameters. */
  static ChainedOptionsBuilder groupOptions(LanesCli.Group group, List<String> methods, String value,
      Map<String, String> overrides) {
    ChainedOptionsBuilder options = new OptionsBuilder()
        .addProfiler(GCProfiler.class)
        .addProfiler(LoopAllocationProfiler.class)
        .shouldFailOnError(true);
    for (String method : methods) {
      // JMH ORs its include patterns, so the user's filter is applied here, name by name.
      options.include("^" + Pattern.quote(method) + "$");
    }
    // One list per parameter: JMH adds a second list for a name rather than replacing the first.
    Map<String, String[]> params = new java.util.LinkedHashMap<>(group.params());
    overrides.forEach((name, values) -> {
      // The split's value comes in on its own below; a parameter of another benchmark (e.g.
      // -p size=... while softmax runs) is not ours.
      if (!name.equals(group.split()) && group.hasParameter(name)) {
        params.put(name, group.allowed(name, values));
      }
    });
    params.remove(group.split());
    params.forEach(options::param);
    return options.param(group.split(), value);
  }

  /**
   * Runs the rounds in a child JVM with the flags of the benchmarks' JMH forks, its output going
   * to this console, and returns every round's results.
   */
  static List<RunResult> inChildJvm(LanesCli.Group group, List<String> methods, String value,
      Map<String, String> overrides, int rounds, Path resultBase) throws IOException, InterruptedException {
    Path results = Files.createTempFile("lanes-rounds", ".bin");
    try {
      List<String> command = new ArrayList<>();
      command.add(ProcessHandle.current().info().command().orElse("java"));
      // The JVM flags of the benchmarks' own JMH forks, from the one place that states them.
      command.addAll(List.of(BenchmarkDefaults.class.getAnnotation(Fork.class).jvmArgsAppend()));
      command.addAll(List.of("-cp", System.getProperty("java.class.path"),
          LanesCli.class.getName(), "bench-rounds", group.id(), value, results.toString(),
          "--rounds", Integer.toString(rounds), "--result", resultBase.toString()));
      for (String method : methods) {
        command.add("--method=" + method);
      }
      overrides.forEach((name, values) -> command.add("--param=" + name + "=" + values));
      int exit = new ProcessBuilder(command).inheritIO().start().waitFor();
      if (exit != 0) {
        throw new IOException("the benchmark JVM for " + group.id() + " " + group.split() + "=" + value
            + " exited with " + exit);
      }
      try (ObjectInputStream in = new ObjectInputStream(Files.newInputStream(results))) {
        @SuppressWarnings("unchecked")
        List<RunResult> list = (List<RunResult>) in.readObject();
        return list;
      } catch (ClassNotFoundException e) {
        throw new IOException(e);
      }
    } finally {
      Files.deleteIfExists(results);
    }
  }

  /** The child JVM's side: {@code lanes bench-rounds GROUP VALUE OUT}, not meant to be typed. */
  @Command(name = "bench-rounds", hidden = true,
      description = "Internal: one group of lanes bench at one split value, in rounds, in this JVM.")
  static final class Child implements Callable<Integer> {
    @Parameters(index = "0")
    String groupId;

    @Parameters(index = "1")
    String value;

    @Parameters(index = "2")
    Path out;

    @Option(names = "--method", required = true)
    List<String> methods;

    @Option(names = "--param")
    Map<String, String> overrides = new java.util.LinkedHashMap<>();

    @Option(names = "--rounds", defaultValue = "5")
    int rounds;

    @Option(names = "--result", required = true)
    Path resultBase;

    @Override
    public Integer call() throws Exception {
      LanesCli.Group group = LanesCli.group(groupId);
      List<RunResult> all = new ArrayList<>();
      for (int round = 0; round < rounds; round++) {
        for (String method : methods) {
          // The first round warms each method up as a fork would; later rounds find its code
          // compiled and only let the trial's fresh operands settle (page faults, caches).
          boolean first = round == 0;
          String name = method.substring(method.lastIndexOf('.') + 1);
          Path file = resultBase.resolveSibling(resultBase.getFileName().toString()
              .replace(".json", "-" + group.id() + "-" + value + "-" + name + "-round" + (round + 1) + ".json"));
          Files.createDirectories(file.toAbsolutePath().getParent());
          ChainedOptionsBuilder options = groupOptions(group, List.of(method), value, overrides).forks(0)
              .warmupIterations(first ? group.warmupIterations() : 1)
              .warmupTime(TimeValue.milliseconds(first ? 500 : 200))
              .measurementIterations(1).measurementTime(TimeValue.milliseconds(500))
              .result(file.toString()).resultFormat(ResultFormatType.JSON);
          all.addAll(new Runner(options.build()).run());
        }
      }
      try (ObjectOutputStream stream = new ObjectOutputStream(Files.newOutputStream(out))) {
        stream.writeObject(all);
      }
      return 0;
    }
  }
}
