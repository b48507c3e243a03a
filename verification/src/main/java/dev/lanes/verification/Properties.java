package dev.lanes.verification;

import org.quicktheories.QuickTheory;

/**
 * How Lanes runs QuickTheories properties: seeded, sized and replayable.
 *
 * <ul>
 *   <li>A failing property reports the smallest falsifying case QuickTheories shrank to and the line
 *       {@code Seed was N}.
 *   <li>{@code -Dlanes.qt.seed=N} replays exactly that run (same cases, same order).
 *   <li>{@code -Dlanes.qt.examples=N} raises every property's case count for a thorough run; it
 *       never lowers a property below the minimum it asks for.
 * </ul>
 * With Maven: {@code mvn test -Dlanes.qt.seed=N -Dtest=GemmPropertiesTest}.
 */
public final class Properties {
  public static final String SEED_PROPERTY = "lanes.qt.seed";
  public static final String EXAMPLES_PROPERTY = "lanes.qt.examples";

  private Properties() {}

  /** A QuickTheories run with at least {@code minimumExamples} cases, seeded as described above. */
  public static QuickTheory qt(int minimumExamples) {
    long seed = seed();
    int examples = Math.max(minimumExamples, intProperty(EXAMPLES_PROPERTY, 0));
    return QuickTheory.qt().withFixedSeed(seed).withExamples(examples);
  }

  /** The seed this run uses: the replay seed if one was given, otherwise a fresh one. */
  public static long seed() {
    String replay = System.getProperty(SEED_PROPERTY, "").trim();
    return replay.isEmpty() ? System.nanoTime() ^ Double.doubleToLongBits(Math.random())
        : Long.parseLong(replay);
  }

  private static int intProperty(String name, int fallback) {
    String value = System.getProperty(name, "").trim();
    return value.isEmpty() ? fallback : Integer.parseInt(value);
  }
}
