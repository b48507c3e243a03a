package dev.lanes.bench;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The JMH settings every Lanes benchmark shares (JMH's class-level annotations are inherited):
 * average time per op in microseconds, one fork with the Vector API module and a fixed 1 GiB heap,
 * 3 warm-up and 5 measured one-second iterations ({@code lanes bench} shortens them).
 *
 * <p>The iteration-level setup and teardown bracket JMH's measured loop on the worker thread, so
 * that {@link LoopAllocationProfiler} can report what the benchmark methods themselves allocate,
 * apart from JMH's own per-iteration bookkeeping.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public abstract class BenchmarkDefaults {
  @Setup(Level.Iteration)
  public void startLoopAllocation() {
    LoopAllocationProfiler.loopStarts();
  }

  @TearDown(Level.Iteration)
  public void endLoopAllocation() {
    LoopAllocationProfiler.loopEnds();
  }
}
