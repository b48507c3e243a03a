package dev.lanes.bench;

import dev.lanes.kernels.Conv1d;
import dev.lanes.kernels.Conv2d;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * 1-D convolution of a TextCNN layer, N64 C128 L256, K128, width 3, padding 1, forward and both
 * backward passes, against Lanes' own GEMM as the yardstick (see {@link ConvBenchmarkBase}). Every
 * pass counts {@code 2 N K C S Lout} flops. It runs through {@link Conv1d}'s view as a
 * {@link Conv2d} one row high, which is exactly what {@link Conv1d}'s methods delegate to.
 */
@State(Scope.Benchmark)
public class Conv1dBenchmark extends ConvBenchmarkBase {
  @Param({"textcnn"})
  public String shape;

  static Conv1d shape(String name) {
    if (!name.equals("textcnn")) {
      throw new IllegalArgumentException("unknown shape " + name);
    }
    return Conv1d.builder(64, 128, 256).filters(128).kernel(3).padding(1).build();
  }

  @Override
  protected Conv2d convolution() {
    return shape(shape).asConv2d();
  }
}
