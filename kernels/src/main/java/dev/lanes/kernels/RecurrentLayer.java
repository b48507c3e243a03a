package dev.lanes.kernels;

/**
 * What the recurrent layers ({@link Lstm}, {@link Gru}) share: their dimensions, fixed and
 * validated at construction, and the checks of their buffers. The layers themselves keep their
 * equations, workspace layout, forward and backward.
 */
public abstract sealed class RecurrentLayer permits Lstm, Gru {
  final int steps;
  final int batch;
  final int input;
  final int hidden;
  final RecurrentChecks checks;

  RecurrentLayer(int steps, int batch, int input, int hidden, int gates) {
    RecurrentChecks.dimensions(steps, batch, input, hidden, gates);
    this.steps = steps;
    this.batch = batch;
    this.input = input;
    this.hidden = hidden;
    this.checks = new RecurrentChecks(steps, batch, input, hidden, gates);
  }

  public int steps() {
    return steps;
  }

  public int batch() {
    return batch;
  }

  public int input() {
    return input;
  }

  public int hidden() {
    return hidden;
  }

  /** Floats of workspace a forward and its backward need. */
  public abstract long workspaceFloats();

  @Override
  public String toString() {
    return getClass().getSimpleName() + "[T=" + steps + ", B=" + batch + ", I=" + input + ", H=" + hidden + "]";
  }
}
