/**
 * Property-based verification: kernels against their double-precision references, and gradients
 * against numerical differentiation. Public, so users can point it at their own ops:
 * {@link dev.lanes.verification.NumericalGradient} checks any backward against central differences
 * of its forward, with the quotient's error derived rather than tuned; the case generators
 * ({@link dev.lanes.verification.GemmCase}, {@link dev.lanes.verification.ConvCase}) draw the shapes
 * the kernels' properties need; {@link dev.lanes.verification.Doubles} widens float data.
 *
 * <p>Properties run on QuickTheories. {@link dev.lanes.verification.Properties} fixes how a run is
 * seeded and sized: every failure prints the seed that replays it, {@code -Dlanes.qt.seed=N}
 * replays one, and {@code -Dlanes.qt.examples=N} asks for a more thorough run.
 *
 * <p>May depend on {@code dev.lanes.graph}, {@code dev.lanes.ops} and {@code dev.lanes.kernels}.
 */
package dev.lanes.verification;
