package dev.lanes.bench;

import dev.lanes.kernels.Gru;
import java.lang.foreign.MemorySegment;
import org.openjdk.jmh.annotations.Benchmark;

/** The GRU layer of {@link RecurrentBenchmarkBase} (T50 B64 I256 H256). */
public class GruBenchmark extends RecurrentBenchmarkBase {
  private final Gru gru = Gru.of(T, B, I, H);

  @Override
  protected int gates() {
    return 3;
  }

  @Override
  protected long workspaceFloats() {
    return gru.workspaceFloats();
  }

  @Benchmark
  public MemorySegment forward() {
    gru.forward(x, 0, wIh, 0, wHh, 0, bIh, 0, bHh, 0, h0, 0, y, 0, hT, 0, workspace, 0, parallelism);
    return y;
  }

  @Benchmark
  public MemorySegment forwardBackward() {
    forward();
    gru.backward(x, 0, wIh, 0, wHh, 0, h0, 0, y, 0, dy, 0, null, 0, dx, 0, dwIh, 0, dwHh, 0, dbIh, 0, dbHh, 0, dh0, 0,
        workspace, 0, parallelism);
    return dwHh;
  }
}
