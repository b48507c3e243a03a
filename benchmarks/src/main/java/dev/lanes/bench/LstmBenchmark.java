package dev.lanes.bench;

import dev.lanes.kernels.Lstm;
import java.lang.foreign.MemorySegment;
import org.openjdk.jmh.annotations.Benchmark;

/** The LSTM layer of {@link RecurrentBenchmarkBase} (T50 B64 I256 H256), with c0 and cT too. */
public class LstmBenchmark extends RecurrentBenchmarkBase {
  private final Lstm lstm = Lstm.of(T, B, I, H);
  private MemorySegment c0;
  private MemorySegment cT;
  private MemorySegment dc0;

  @Override
  protected int gates() {
    return 4;
  }

  @Override
  protected long workspaceFloats() {
    return lstm.workspaceFloats();
  }

  @Override
  protected void setUpLayer() {
    c0 = BenchData.uniform(arena, (long) B * H, 7);
    cT = BenchData.zeros(arena, (long) B * H);
    dc0 = BenchData.zeros(arena, (long) B * H);
  }

  @Benchmark
  public MemorySegment forward() {
    lstm.forward(x, 0, wIh, 0, wHh, 0, bIh, 0, bHh, 0, h0, 0, c0, 0, y, 0, hT, 0, cT, 0, workspace, 0, parallelism);
    return y;
  }

  @Benchmark
  public MemorySegment forwardBackward() {
    forward();
    lstm.backward(x, 0, wIh, 0, wHh, 0, h0, 0, y, 0, dy, 0, null, 0, null, 0, dx, 0, dwIh, 0, dwHh, 0, dbIh, 0, dbHh,
        0, dh0, 0, dc0, 0, workspace, 0, parallelism);
    return dwHh;
  }
}
