package dev.lanes.bench;

import java.lang.management.ManagementFactory;
import java.util.Collection;
import java.util.List;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.profile.InternalProfiler;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.ScalarResult;

/**
 * Bytes the benchmark methods allocate per op, measured on the threads that run them and only
 * while JMH's measured loop runs: {@code alloc.loop.norm}.
 *
 * <p>Why not JMH's {@code gc.alloc.rate.norm} alone: JMH 1.37 reads the allocation counter of the
 * whole JVM ({@code getTotalThreadAllocatedBytes}) from before to after an iteration, so it also
 * counts JMH's own bookkeeping: about 2 KB on the main and worker threads per iteration, and more on
 * threads that come and go, some 7 KB per 500 ms iteration in all here. That is a fixed cost per
 * iteration, so an op of 15 ms shows about 200 B/op there even when it allocates nothing, exactly as
 * a plain {@code MemorySegment.copy} of the same length does.
 *
 * <p>This profiler counts two things and divides by JMH's op count:
 * <ul>
 *   <li>the JMH worker thread's allocation between {@link BenchmarkDefaults}' iteration setup and
 *       teardown, which bracket the measured loop and nothing else (JMH allocates its iteration
 *       results before the setup and after the teardown);
 *   <li>the allocation of Lanes' own pool threads ({@code lanes-*}) over the iteration, as they run
 *       kernel work only.
 * </ul>
 * A kernel that boxed a vector, captured a lambda or made a segment view per call shows here.
 */
public final class LoopAllocationProfiler implements InternalProfiler {
  private static final com.sun.management.ThreadMXBean THREADS =
      (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

  /** Written by the worker thread in the iteration setup and teardown, read after the iteration. */
  private static volatile long loopStart;
  private static volatile long loopBytes = -1;

  private long poolBefore;

  static void loopStarts() {
    loopBytes = -1;
    loopStart = THREADS.getCurrentThreadAllocatedBytes();
  }

  static void loopEnds() {
    loopBytes = THREADS.getCurrentThreadAllocatedBytes() - loopStart;
  }

  @Override
  public String getDescription() {
    return "bytes allocated per op inside JMH's measured loop, by the worker and Lanes' pool threads";
  }

  @Override
  public void beforeIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams) {
    poolBefore = poolThreadBytes();
  }

  @Override
  public Collection<? extends Result> afterIteration(
      BenchmarkParams benchmarkParams, IterationParams iterationParams, IterationResult result) {
    long pool = poolThreadBytes() - poolBefore;
    long loop = loopBytes;
    if (loop < 0) {
      return List.of(); // a benchmark that does not extend BenchmarkDefaults: nothing measured
    }
    double ops = Math.max(1, result.getMetadata().getAllOps());
    return List.of(new ScalarResult("alloc.loop.norm", (loop + pool) / ops, "B/op", AggregationPolicy.AVG));
  }

  /** Allocation so far of the live {@code lanes-*} threads (a pool thread never ends). */
  private static long poolThreadBytes() {
    long total = 0;
    for (Thread thread : Thread.getAllStackTraces().keySet()) {
      if (thread.getName().startsWith("lanes-")) {
        long bytes = THREADS.getThreadAllocatedBytes(thread.threadId());
        total += Math.max(0, bytes);
      }
    }
    return total;
  }
}
