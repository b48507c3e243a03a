package dev.lanes.bench;

import dev.lanes.kernels.Conv2d;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * 2-D convolution, forward and both backward passes, against Lanes' own GEMM as the yardstick
 * (see {@link ConvBenchmarkBase}):
 * <ul>
 *   <li>{@code resnet}: N32 C64 56x56, K64 3x3, padding 1 (a ResNet stage-2 layer);
 *   <li>{@code lenet}: N64 C1 28x28, K20 5x5 (LeNet's first layer).
 * </ul>
 * Every pass counts {@code 2 N K (C/groups) R S Hout Wout} flops. Targets for {@code resnet}: 80% of
 * the GEMM's GFLOPS forward, 70% backward.
 */
@State(Scope.Benchmark)
public class Conv2dBenchmark extends ConvBenchmarkBase {
  @Param({"resnet", "lenet"})
  public String shape;

  static Conv2d shape(String name) {
    return switch (name) {
      case "resnet" -> Conv2d.builder(32, 64, 56, 56).filters(64).kernel(3, 3).padding(1, 1).build();
      case "lenet" -> Conv2d.builder(64, 1, 28, 28).filters(20).kernel(5, 5).build();
      default -> throw new IllegalArgumentException("unknown shape " + name);
    };
  }

  @Override
  protected Conv2d convolution() {
    return shape(shape);
  }
}
