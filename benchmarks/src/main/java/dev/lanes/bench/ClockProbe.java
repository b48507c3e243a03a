package dev.lanes.bench;

/**
 * Measures this core's clock while it runs scalar integer code.
 *
 * <p>A chain of {@code x += x >>> 7} steps is two dependent one-cycle instructions (shift, add) on
 * every x86-64 core, so the chain runs at exactly one step per two cycles whatever the out-of-order
 * width, and steps per nanosecond give GHz. {@code /proc/cpuinfo} cannot be trusted for this: on
 * our VMs it reports a nominal 2000 MHz while the cores run at about 3 GHz. The figure is an upper
 * bound on the clock during AVX-512 work, which some parts run slower, so % of peak computed from
 * it is conservative.
 */
final class ClockProbe {
  private static final int STEPS = 100_000_000;

  private ClockProbe() {}

  /** The median of several timed chains, in GHz. */
  static double measureGhz() {
    long sink = 0;
    double[] ghz = new double[9];
    for (int warm = 0; warm < 3; warm++) {
      sink += chain(STEPS / 10, warm);
    }
    for (int i = 0; i < ghz.length; i++) {
      long t0 = System.nanoTime();
      sink += chain(STEPS, i);
      long t1 = System.nanoTime();
      ghz[i] = 2.0 * STEPS / (t1 - t0);
    }
    if (sink == 42) {
      System.out.print(""); // keeps the chains' results alive
    }
    java.util.Arrays.sort(ghz);
    return ghz[ghz.length / 2];
  }

  private static long chain(int steps, long seed) {
    long x = seed | 1;
    for (int i = 0; i < steps; i++) {
      x += x >>> 7;
    }
    return x;
  }
}
