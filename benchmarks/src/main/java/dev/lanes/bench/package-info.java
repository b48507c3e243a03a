/**
 * JMH benchmarks of the kernels against native peers measured in the same run (OpenBLAS through
 * bytedeco on off-heap memory), and {@link dev.lanes.bench.LanesCli}, the {@code ./lanes bench}
 * command that runs them and prints the comparison table, and {@code ./lanes interleaved}
 * ({@link dev.lanes.bench.InterleavedGemm}), which alternates Lanes' and OpenBLAS's SGEMM call by
 * call so that both meet a noisy machine at the same moments. May depend on every other Lanes module.
 */
package dev.lanes.bench;
