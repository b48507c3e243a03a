package dev.lanes.bench;

import java.util.Arrays;
import java.util.Locale;

/** The summary line of the interleaved commands: the median of the rounds' ratios and their range. */
final class RoundRatios {
  private RoundRatios() {}

  /** {@code "ratio M (rounds LO to HI)"}, M the median (the upper one for an even count). */
  static String summary(double[] ratios) {
    double[] sorted = ratios.clone();
    Arrays.sort(sorted);
    return String.format(Locale.ROOT, "ratio %.2f (rounds %.2f to %.2f)", sorted[sorted.length / 2], sorted[0],
        sorted[sorted.length - 1]);
  }
}
