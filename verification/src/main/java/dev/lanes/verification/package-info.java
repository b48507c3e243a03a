/**
 * Property-based verification: kernels against their double-precision references, and (later)
 * gradients against numerical differentiation. Public, so users can point it at their own ops.
 *
 * <p>Properties run on QuickTheories. {@link dev.lanes.verification.Properties} fixes how a run is
 * seeded and sized: every failure prints the seed that replays it, {@code -Dlanes.qt.seed=N}
 * replays one, and {@code -Dlanes.qt.examples=N} asks for a more thorough run.
 *
 * <p>May depend on {@code dev.lanes.graph}, {@code dev.lanes.ops} and {@code dev.lanes.kernels}.
 */
package dev.lanes.verification;
