package dev.lanes.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementwise activation functions and their derivatives, on {@code n} contiguous floats, as in
 * oneDNN's eltwise primitive: an algorithm plus, where it has one, a parameter alpha.
 *
 * <pre>
 *   Activation.RELU.forward(n, x, 0, y, 0);          // y = relu(x)
 *   Activation.RELU.backward(n, x, 0, dy, 0, dx, 0); // dx = dy * relu'(x)
 *   Activation.leakyRelu(0.2f).forward(n, x, 0, x, 0); // in place
 * </pre>
 *
 * <h2>Layout and aliasing</h2>
 * Element i of a buffer is float {@code offset + i}. The output may be the input at the same
 * offset (in place), and dx may be dy; other overlaps are not supported. The backward takes the
 * forward's input x, not its output, so that every function, GELU included, has one signature;
 * a caller that ran the forward in place keeps a copy of x. {@link Function#STEP} has no backward
 * (its derivative is 0 wherever it exists, so PyTorch defines none either).
 *
 * <p>Native segments (from an {@code Arena}) are the fast path. Arrays, heap segments and mapped
 * files pass through a per-thread native buffer 4096 floats at a time, a copy in and out, with
 * the same results to the bit.
 *
 * <h2>Definitions and accuracy</h2>
 * PyTorch's definitions. Each float result is within the stated error of the exact value for the
 * same float inputs, with {@code u = 2^-24}, first order in u. The exponential is
 * {@link VectorMath#expUpTo88} (3u) and tanh {@link VectorMath#tanh} (6u), both derived there;
 * ELU's e^x - 1 is {@link VectorMath#expm1NonPositive} (5u) and softplus's log1p
 * {@link VectorMath#log1pUnit} (5u): not the Vector API's EXPM1 and LOG1P, which round differently
 * in C2 and in the interpreter, so results would depend on the JIT tier of the thread that ran
 * them. Where an exponential may flush to 0,
 * add {@code 2^-126} times the factors that multiply it.
 * <table>
 *   <caption>Functions, forward error and backward error (of {@code dy f'(x)})</caption>
 *   <tr><th>function</th><th>f(x)</th><th>forward</th><th>backward</th></tr>
 *   <tr><td>RELU</td><td>max(x, 0); NaN stays NaN</td><td>exact</td><td>exact</td></tr>
 *   <tr><td>LEAKY_RELU</td><td>x &gt; 0 ? x : alpha x</td><td>u</td><td>u</td></tr>
 *   <tr><td>ELU</td><td>x &gt; 0 ? x : alpha (e^x - 1)</td><td>6u</td><td>5u</td></tr>
 *   <tr><td>SELU</td><td>lambda (x &gt; 0 ? x : a (e^x - 1)), the constants of Klambauer et al.</td>
 *       <td>7u</td><td>6u</td></tr>
 *   <tr><td>SIGMOID</td><td>1 / (1 + e^-x)</td><td>5u</td><td>16u</td></tr>
 *   <tr><td>TANH</td><td>tanh x</td><td>6u</td><td>16u</td></tr>
 *   <tr><td>SOFTPLUS</td><td>log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|)</td><td>9u</td>
 *       <td>6u</td></tr>
 *   <tr><td>GELU</td><td>x Phi(x), Phi the standard normal CDF</td>
 *       <td>2.1e-8 + 18u</td><td>(2.1e-8 + 19u) (Phi(x) + |x| phi(x)) |dy|, absolute</td></tr>
 *   <tr><td>GELU_TANH</td><td>x/2 (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi)</td>
 *       <td>(10|t| + 6)u, t the tanh argument</td>
 *       <td>(10|t| + 23)u (s + |x| s(1-s) 2t') |dy|, s = sigmoid(2t), absolute</td></tr>
 *   <tr><td>STEP</td><td>x &gt; 0 ? 1 : 0 (NaN gives 0, as torch.heaviside with value 0)</td>
 *       <td>exact</td><td>none</td></tr>
 * </table>
 * Errors are relative to the result unless marked absolute; {@code ActivationPropertiesTest}
 * restates each with its derivation and checks it. At ±inf every derivative is its limit.
 *
 * <p>The numerically delicate spots are computed in stable forms: the derivatives of sigmoid and
 * tanh as {@code e s^2} with {@code e = exp(-|x|)} (or {@code exp(-2|x|)}) and {@code s = 1/(1+e)},
 * never {@code s(1-s)} or {@code 1 - t^2}, which round to 0 in the tails; GELU_TANH as
 * {@code x sigmoid(2t)}, which equals the tanh form but does not cancel for negative x; and the
 * normal CDF's tail from a fit with relative (not absolute) error, with {@code x^2/2} split into
 * two floats by an FMA so that its rounding does not grow with |x|.
 */
public final class Activation {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /** Every loop below starts by testing its segments against this: see SegmentLoops.NATIVE. */
  private static final Class<?> NATIVE = SegmentLoops.NATIVE;
  /**
   * Calls run in chunks of this many floats (16 KiB, well inside L1 with GELU_TANH's scratch). The
   * loops are then entered thousands of times per large call and C2 compiles them as methods with
   * complete profiles; run as one 16M-element loop, they were compiled on-stack mid-loop and a
   * helper could be left out of line, boxing its vectors.
   */
  private static final long CHUNK = 4096;

  /**
   * Byte offset in SCRATCH of two vectors (input, and dy or output) through which the last
   * {@code n % LANES} floats of a call are staged, so that the loops only ever see whole vectors:
   * a masked load and store in every step cost 3x in L1-resident loops (measured), and a separate
   * masked tail step would be a second, cold call site of the vector function, which C2 does not
   * inline and then boxes.
   */
  private static final long TAIL = 4 * CHUNK;

  /**
   * Two chunks of native memory per thread (x, then dy or the output) through which heap and
   * mapped segments pass, a chunk at a time: the loops take only plain native memory, the one kind
   * whose exact class lets C2 drop their per-access checks (see {@link SegmentLoops#NATIVE}).
   */
  private static final ThreadLocal<MemorySegment> HEAP_STAGE =
      ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(8 * CHUNK, 64));

  /*
   * GELU_TANH's backward runs in two passes over each chunk, each with one exponential: the first
   * stores s(2t) into a per-thread scratch chunk, the second finishes. The passes are separate
   * loops called from the dispatch, so that C2 compiles them apart: two exponentials, a division
   * and a polynomial in one loop exceeded C2's inlining node budget (NodeCountInliningCutoff) when
   * GELU was written that way, an exponential stayed a call, and its vectors were boxed (12 bytes
   * per element).
   */
  private static final ThreadLocal<MemorySegment> SCRATCH =
      ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(4 * (CHUNK + 2L * LANES), 64));


  /** The algorithms. */
  public enum Function {
    RELU, LEAKY_RELU, ELU, SELU, SIGMOID, TANH, SOFTPLUS, GELU, GELU_TANH, STEP
  }

  public static final Activation RELU = new Activation(Function.RELU, 0);
  public static final Activation SELU = new Activation(Function.SELU, 0);
  public static final Activation SIGMOID = new Activation(Function.SIGMOID, 0);
  public static final Activation TANH = new Activation(Function.TANH, 0);
  public static final Activation SOFTPLUS = new Activation(Function.SOFTPLUS, 0);
  public static final Activation GELU = new Activation(Function.GELU, 0);
  public static final Activation GELU_TANH = new Activation(Function.GELU_TANH, 0);
  public static final Activation STEP = new Activation(Function.STEP, 0);

  /** SELU's lambda and alpha (Klambauer et al., 2017), as PyTorch rounds them to float. */
  static final float SELU_SCALE = 1.0507009873554804934193349852946f;
  static final float SELU_ALPHA = 1.6732632423543772848170429916717f;

  private final Function function;
  private final float alpha;

  private Activation(Function function, float alpha) {
    this.function = function;
    this.alpha = alpha;
  }

  /** LeakyReLU with the given negative slope (PyTorch's default is 0.01). */
  public static Activation leakyRelu(float slope) {
    finite(slope, "slope");
    return new Activation(Function.LEAKY_RELU, slope);
  }

  /** ELU with the given alpha (PyTorch's default is 1). */
  public static Activation elu(float alpha) {
    finite(alpha, "alpha");
    return new Activation(Function.ELU, alpha);
  }

  private static void finite(float value, String name) {
    if (!Float.isFinite(value)) {
      throw new IllegalArgumentException(name + " = " + value + " must be finite");
    }
  }

  public Function function() {
    return function;
  }

  /** The slope of LEAKY_RELU or the alpha of ELU; 0 for the others. */
  public float alpha() {
    return alpha;
  }

  @Override
  public String toString() {
    return alpha == 0 ? function.name() : function.name() + "(" + alpha + ")";
  }

  /** {@code y[i] = f(x[i])} for {@code i < n}; y may be x. On {@link Parallelism#getDefault()}. */
  public void forward(long n, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
    forward(n, x, xOffset, y, yOffset, Parallelism.getDefault());
  }

  /**
   * {@code y[i] = f(x[i])} for {@code i < n}; y may be x. The range is cut into one run of whole
   * vectors per thread; each element is computed the same way wherever the cut falls, so the
   * result does not depend on the thread count.
   */
  public void forward(long n, MemorySegment x, long xOffset, MemorySegment y, long yOffset,
      Parallelism parallelism) {
    Checks.nonNegative(n, "n");
    Elementwise.span(n, x, xOffset, "x", false);
    Elementwise.span(n, y, yOffset, "y", true);
    Checks.notNull(parallelism, "parallelism");
    Split.invoke(this, false, n, x, 4 * xOffset, null, 0, y, 4 * yOffset, parallelism);
  }

  /** The forward on byte offsets, arguments already validated. */
  void run(long n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    run(false, n, x, xAt, y, yAt);
  }

  /**
   * {@link #run} for the LSTM's and GRU's steps, which take SIGMOID and TANH only. Their loops are
   * reached apart from the public forward's switch: C2 compiles a recurrent step, or the driver
   * below, with the loops it reaches inlined, and through the shared switch (whose profile holds
   * every function the JVM has run) that unit also took in the standalone kernels' loops. Measured
   * with a standalone tanh and sigmoid run first: the unit ran past C2's inlining node budget, a
   * vector helper was left out of line, and the LSTM boxed 39 MB and the GRU 26 MB per
   * forward+backward (T50 B64 I256 H256). The steps' loops are {@link StepActivations}', which
   * call no vector helper: see there for the boxing that guards against.
   */
  void runInStep(long n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    run(true, n, x, xAt, y, yAt);
  }

  private void run(boolean inStep, long n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    long whole = n - n % LANES;
    boolean plain = SegmentLoops.allNative(x, y);
    for (long done = 0; done < whole; done += CHUNK) {
      int count = (int) Math.min(CHUNK, whole - done);
      if (plain) {
        loop(inStep, count, x, xAt + 4 * done, y, yAt + 4 * done);
      } else {
        // Heap or mapped memory, through native memory: see HEAP_STAGE.
        MemorySegment stage = HEAP_STAGE.get();
        MemorySegment.copy(x, xAt + 4 * done, stage, 0, 4L * count);
        loop(inStep, count, stage, 0, stage, 0);
        MemorySegment.copy(stage, 0, y, yAt + 4 * done, 4L * count);
      }
    }
    if (whole < n) {
      // The last n % LANES floats go through one whole vector of scratch (see TAIL).
      MemorySegment stage = SCRATCH.get();
      long rest = 4 * (n - whole);
      MemorySegment.copy(x, xAt + 4 * whole, stage, TAIL, rest);
      loop(inStep, LANES, stage, TAIL, stage, TAIL);
      MemorySegment.copy(stage, TAIL, y, yAt + 4 * whole, rest);
    }
  }

  private void loop(boolean inStep, int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (!inStep) {
      forwardLoop(function, alpha, n, x, xAt, y, yAt);
    } else if (function == Function.TANH) {
      StepActivations.tanh(n, x, xAt, y, yAt);
    } else if (function == Function.SIGMOID) {
      StepActivations.sigmoid(n, x, xAt, y, yAt);
    } else {
      throw new AssertionError("runInStep takes SIGMOID and TANH, not " + function);
    }
  }

  /** {@code dx[i] = dy[i] f'(x[i])} for {@code i < n}; dx may be dy. On {@link Parallelism#getDefault()}. */
  public void backward(long n, MemorySegment x, long xOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset) {
    backward(n, x, xOffset, dy, dyOffset, dx, dxOffset, Parallelism.getDefault());
  }

  /**
   * {@code dx[i] = dy[i] f'(x[i])} for {@code i < n}; dx may be dy. Cut between threads as the
   * forward is, with the same independence from the thread count.
   */
  public void backward(long n, MemorySegment x, long xOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset, Parallelism parallelism) {
    if (function == Function.STEP) {
      throw new UnsupportedOperationException("STEP has no backward: its derivative is 0 wherever it exists");
    }
    Checks.nonNegative(n, "n");
    Elementwise.span(n, x, xOffset, "x", false);
    Elementwise.span(n, dy, dyOffset, "dy", false);
    Elementwise.span(n, dx, dxOffset, "dx", true);
    Checks.notNull(parallelism, "parallelism");
    Split.invoke(this, true, n, x, 4 * xOffset, dy, 4 * dyOffset, dx, 4 * dxOffset, parallelism);
  }

  /** The backward on byte offsets, arguments already validated. */
  private void runBackward(long n, MemorySegment x, long xAt, MemorySegment dy, long dyAt, MemorySegment dx,
      long dxAt) {
    long whole = n - n % LANES;
    boolean plain = SegmentLoops.allNative(x, dy, dx);
    for (long done = 0; done < whole; done += CHUNK) {
      int count = (int) Math.min(CHUNK, whole - done);
      if (plain) {
        backwardLoop(function, alpha, count, x, xAt + 4 * done, dy, dyAt + 4 * done, dx, dxAt + 4 * done);
      } else {
        MemorySegment stage = HEAP_STAGE.get();
        MemorySegment.copy(x, xAt + 4 * done, stage, 0, 4L * count);
        MemorySegment.copy(dy, dyAt + 4 * done, stage, 4 * CHUNK, 4L * count);
        backwardLoop(function, alpha, count, stage, 0, stage, 4 * CHUNK, stage, 4 * CHUNK);
        MemorySegment.copy(stage, 4 * CHUNK, dx, dxAt + 4 * done, 4L * count);
      }
    }
    if (whole < n) {
      MemorySegment stage = SCRATCH.get();
      long rest = 4 * (n - whole);
      MemorySegment.copy(x, xAt + 4 * whole, stage, TAIL, rest);
      MemorySegment.copy(dy, dyAt + 4 * whole, stage, TAIL + 4 * LANES, rest);
      backwardLoop(function, alpha, LANES, stage, TAIL, stage, TAIL + 4 * LANES, stage, TAIL + 4 * LANES);
      MemorySegment.copy(stage, TAIL + 4 * LANES, dx, dxAt + 4 * whole, rest);
    }
  }

  /**
   * A forward or backward cut into one run per thread, each a multiple of LANES floats except the
   * last. One instance per calling thread, reused (fields set for a call, cleared after it), so a
   * call allocates nothing.
   */
  private static final class Split implements ParallelTask {
    private static final ThreadLocal<Split> PER_THREAD = ThreadLocal.withInitial(Split::new);
    /** Below this many floats per thread a call stays on the calling thread. */
    private static final long MIN_FLOATS_PER_THREAD = 1 << 16;

    private Activation activation;
    private boolean backward;
    private long n;
    private MemorySegment x;
    private long xAt;
    private MemorySegment dy;
    private long dyAt;
    private MemorySegment out;
    private long outAt;

    static void invoke(Activation activation, boolean backward, long n, MemorySegment x, long xAt, MemorySegment dy,
        long dyAt, MemorySegment out, long outAt, Parallelism parallelism) {
      int parts = (int) Math.min(parallelism.threads(), Math.max(1, n / MIN_FLOATS_PER_THREAD));
      if (!(Checks.shareable(x) && Checks.shareable(out) && (dy == null || Checks.shareable(dy)))) {
        parts = 1;
      }
      if (parts == 1) {
        if (backward) {
          activation.runBackward(n, x, xAt, dy, dyAt, out, outAt);
        } else {
          activation.run(n, x, xAt, out, outAt);
        }
        return;
      }
      Split task = PER_THREAD.get();
      task.activation = activation;
      task.backward = backward;
      task.n = n;
      task.x = x;
      task.xAt = xAt;
      task.dy = dy;
      task.dyAt = dyAt;
      task.out = out;
      task.outAt = outAt;
      try {
        parallelism.invoke(task, parts);
      } finally {
        task.activation = null;
        task.x = null;
        task.dy = null;
        task.out = null;
      }
    }

    @Override
    public void run(int part, int parts) {
      long from = start(part, parts);
      long count = start(part + 1, parts) - from;
      if (backward) {
        activation.runBackward(count, x, xAt + 4 * from, dy, dyAt + 4 * from, out, outAt + 4 * from);
      } else {
        activation.run(count, x, xAt + 4 * from, out, outAt + 4 * from);
      }
    }

    private long start(int part, int parts) {
      return part == parts ? n : n * part / parts / LANES * LANES;
    }
  }

  /** {@link #forward(long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public void forward(int n, float[] x, int xOffset, float[] y, int yOffset) {
    forward(n, x, xOffset, y, yOffset, Parallelism.getDefault());
  }

  /** {@link #forward(long, MemorySegment, long, MemorySegment, long, Parallelism)} on arrays. */
  public void forward(int n, float[] x, int xOffset, float[] y, int yOffset, Parallelism parallelism) {
    forward(n, Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset, parallelism);
  }

  /** {@link #backward(long, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public void backward(int n, float[] x, int xOffset, float[] dy, int dyOffset, float[] dx, int dxOffset) {
    backward(n, x, xOffset, dy, dyOffset, dx, dxOffset, Parallelism.getDefault());
  }

  /** {@link #backward(long, MemorySegment, long, MemorySegment, long, MemorySegment, long, Parallelism)} on arrays. */
  public void backward(int n, float[] x, int xOffset, float[] dy, int dyOffset, float[] dx, int dxOffset,
      Parallelism parallelism) {
    backward(n, Checks.array(x, "x"), xOffset, Checks.array(dy, "dy"), dyOffset, Checks.array(dx, "dx"), dxOffset,
        parallelism);
  }

  // ---- PReLU: a learned slope per channel ----

  /**
   * PReLU over {@code x [N, C, S]} (S = H*W for images, 1 for a dense layer's {@code [N, C]}):
   * {@code y = x > 0 ? x : a[c] x}, with {@code slopes} = C slopes, or 1 shared by all channels
   * (PyTorch's {@code num_parameters}). y may be x.
   */
  public static void prelu(int batch, int channels, int spatial, MemorySegment x, long xOffset,
      MemorySegment a, long aOffset, int slopes, MemorySegment y, long yOffset) {
    preluChecks(batch, channels, spatial, x, xOffset, a, aOffset, slopes);
    Checks.writable(y, "y");
    Checks.tensor("y", "[N,C,S]", batch, channels, spatial, -1, yOffset, Checks.floats(y));
    PreluLoops.forward(batch, channels, spatial, x, 4 * xOffset, a, 4 * aOffset, slopes, y, 4 * yOffset);
  }

  /**
   * PReLU backward: {@code dx = x > 0 ? dy : a[c] dy} and the slope gradient
   * {@code da[c] = sum over n, s of (x > 0 ? 0 : x dy)} (summed over channels too when one slope
   * is shared). da is overwritten, not accumulated; dx may be dy.
   */
  public static void preluBackward(int batch, int channels, int spatial, MemorySegment x, long xOffset,
      MemorySegment a, long aOffset, int slopes, MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset,
      MemorySegment da, long daOffset) {
    preluChecks(batch, channels, spatial, x, xOffset, a, aOffset, slopes);
    Checks.readable(dy, "dy");
    Checks.tensor("dy", "[N,C,S]", batch, channels, spatial, -1, dyOffset, Checks.floats(dy));
    Checks.writable(dx, "dx");
    Checks.tensor("dx", "[N,C,S]", batch, channels, spatial, -1, dxOffset, Checks.floats(dx));
    Checks.writable(da, "da");
    Checks.tensor("da", "[slopes]", slopes, -1, -1, -1, daOffset, Checks.floats(da));
    PreluLoops.backward(batch, channels, spatial, x, 4 * xOffset, a, 4 * aOffset, slopes, dy, 4 * dyOffset,
        dx, 4 * dxOffset, da, 4 * daOffset);
  }

  private static void preluChecks(int batch, int channels, int spatial, MemorySegment x, long xOffset,
      MemorySegment a, long aOffset, int slopes) {
    Checks.nonNegative(batch, "batch");
    Checks.positive(channels, "channels");
    Checks.positive(spatial, "spatial");
    if (slopes != 1 && slopes != channels) {
      throw new IllegalArgumentException("slopes = " + slopes + " must be 1 or channels = " + channels);
    }
    Checks.readable(x, "x");
    Checks.tensor("x", "[N,C,S]", batch, channels, spatial, -1, xOffset, Checks.floats(x));
    Checks.readable(a, "a");
    Checks.tensor("a", "[slopes]", slopes, -1, -1, -1, aOffset, Checks.floats(a));
  }


  /*
   * The loops: one small method per function and direction, each with one masked step, so that
   * every method is a short compilation unit whose vector helpers C2 inlines. One shared loop
   * that switched on the function per vector was measured first: once a second function ran, C2
   * recompiled it with some helpers left out of line ("callee uses too much stack", "callee is too
   * large"), and it boxed 180 to 500 MB per 16M-float call. The mask costs nothing measurable on
   * these memory-bound loops.
   */

  private static void forwardLoop(Function function, float alpha, int n, MemorySegment x, long xAt,
      MemorySegment y, long yAt) {
    switch (function) {
      case RELU -> relu(n, x, xAt, y, yAt);
      case LEAKY_RELU -> leakyRelu(n, alpha, x, xAt, y, yAt);
      case ELU -> elu(n, alpha, 1f, x, xAt, y, yAt);
      case SELU -> elu(n, SELU_ALPHA, SELU_SCALE, x, xAt, y, yAt);
      case SIGMOID -> sigmoid(n, x, xAt, y, yAt);
      case TANH -> tanh(n, x, xAt, y, yAt);
      case SOFTPLUS -> softplus(n, x, xAt, y, yAt);
      case GELU -> gelu(n, x, xAt, y, yAt);
      case GELU_TANH -> geluTanh(n, x, xAt, y, yAt);
      case STEP -> step(n, x, xAt, y, yAt);
    }
  }

  private static void backwardLoop(Function function, float alpha, int n, MemorySegment x, long xAt,
      MemorySegment dy, long dyAt, MemorySegment dx, long dxAt) {
    switch (function) {
      case RELU -> reluGradient(n, x, xAt, dy, dyAt, dx, dxAt);
      case LEAKY_RELU -> leakyReluGradient(n, alpha, x, xAt, dy, dyAt, dx, dxAt);
      case ELU -> eluGradient(n, alpha, 1f, x, xAt, dy, dyAt, dx, dxAt);
      case SELU -> eluGradient(n, SELU_ALPHA, SELU_SCALE, x, xAt, dy, dyAt, dx, dxAt);
      case SIGMOID -> sigmoidGradient(n, x, xAt, dy, dyAt, dx, dxAt);
      case TANH -> tanhGradient(n, x, xAt, dy, dyAt, dx, dxAt);
      case SOFTPLUS -> softplusGradient(n, x, xAt, dy, dyAt, dx, dxAt);
      case GELU -> geluGradient(n, x, xAt, dy, dyAt, dx, dxAt);
      case GELU_TANH -> {
        geluTanhSigmoids(n, x, xAt, SCRATCH.get());
        geluTanhGradient(n, x, xAt, SCRATCH.get(), dy, dyAt, dx, dxAt);
      }
      case STEP -> throw new AssertionError("checked by backward");
    }
  }

  private static void relu(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).max(0f).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  private static void reluGradient(int n, MemorySegment x, long xAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      VectorMask<Float> positive = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).compare(VectorOperators.GT, 0f);
      FloatVector.zero(SPECIES).blend(FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER), positive).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  private static void leakyRelu(int n, float slope, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      v.mul(slope).blend(v, v.compare(VectorOperators.GT, 0f)).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  private static void leakyReluGradient(int n, float slope, MemorySegment x, long xAt, MemorySegment dy,
      long dyAt, MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER);
      g.mul(slope).blend(g, FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).compare(VectorOperators.GT, 0f)).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  /** {@code scale (x > 0 ? x : alpha expm1(x))}: ELU with scale 1, SELU with its constants. */
  private static void elu(int n, float alpha, float scale, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    float scaledAlpha = alpha * scale;
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      FloatVector negative = VectorMath.expm1NonPositive(v).mul(scaledAlpha);
      negative.blend(v.mul(scale), v.compare(VectorOperators.GT, 0f)).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  private static void eluGradient(int n, float alpha, float scale, MemorySegment x, long xAt, MemorySegment dy,
      long dyAt, MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    float scaledAlpha = alpha * scale;
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER);
      FloatVector negative = g.mul(VectorMath.expUpTo88(v).mul(scaledAlpha));
      negative.blend(g.mul(scale), v.compare(VectorOperators.GT, 0f)).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  private static void sigmoid(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      sigmoid(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER)).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  private static void sigmoidGradient(int n, MemorySegment x, long xAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER).mul(sigmoidSlope(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).abs())).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  private static void tanh(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      VectorMath.tanh(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER)).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  /** tanh'(x) = 4 sigmoid'(2x). */
  private static void tanhGradient(int n, MemorySegment x, long xAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector slope = sigmoidSlope(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).abs().mul(2f)).mul(4f);
      FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER).mul(slope).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  /** {@code max(x, 0) + log1p(e^-|x|)}; MAX keeps NaN. */
  private static void softplus(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      FloatVector tail = VectorMath.log1pUnit(VectorMath.expUpTo88(v.abs().neg()));
      v.max(0f).add(tail).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  private static void softplusGradient(int n, MemorySegment x, long xAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER).mul(sigmoid(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER))).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  /** {@code x Phi(x)}. */
  private static void gelu(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      v.mul(normalCdf(v, gaussian(v))).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  /** GELU'(x) = Phi(x) + x phi(x). */
  private static void geluGradient(int n, MemorySegment x, long xAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      FloatVector gauss = gaussian(v);
      // x phi(x) is below 2^-100 past |x| = 30; clamping there keeps it 0 rather than inf * 0 at x = inf.
      FloatVector slope = v.max(-30f).min(30f).mul(gauss).fma(V_INV_SQRT_2PI, normalCdf(v, gauss));
      FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER).mul(slope)
          .intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  /** {@code x sigmoid(2t)}, equal to {@code x (1 + tanh t) / 2}. */
  private static void geluTanh(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      v.mul(sigmoid(geluTanhArgument(v).mul(2f))).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  /**
   * Pass one of GELU_TANH backward: {@code s(2t)} into the scratch chunk. Two passes, as GELU's (see
   * SCRATCH): with both of the slope's exponentials in one loop C2 left VectorMath.powerOfTwo out
   * of line (NodeCountInliningCutoff, read with -XX:+PrintInlining) and boxed its vectors, 16 bytes
   * per element (measured, 16 MB per 2^20-float backward on an AVX2 machine).
   */
  private static void geluTanhSigmoids(int n, MemorySegment x, long xAt, MemorySegment s) {
    if (x.getClass() != NATIVE || s.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      sigmoid(geluTanhArgument(v).mul(2f)).intoMemorySegment(s, 4L * i, ORDER);
    }
  }

  /** Pass two of GELU_TANH backward, given pass one's sigmoids s. */
  private static void geluTanhGradient(int n, MemorySegment x, long xAt, MemorySegment s, MemorySegment dy,
      long dyAt, MemorySegment dx, long dxAt) {
    if (x.getClass() != NATIVE || s.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER);
      FloatVector slope = geluTanhSlope(v, FloatVector.fromMemorySegment(SPECIES, s, 4L * i, ORDER));
      FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER).mul(slope)
          .intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
  }

  private static void step(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      VectorMask<Float> positive = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).compare(VectorOperators.GT, 0f);
      FloatVector.zero(SPECIES).blend(1f, positive).intoMemorySegment(y, yAt + 4L * i, ORDER);
    }
  }

  // ---- The functions, on vectors; small, so that C2 inlines them into the loops ----

  /** {@code 1 / (1 + e^-x)}: e^-x = inf gives 0, the right limit. */
  static FloatVector sigmoid(FloatVector x) {
    return ONE.div(VectorMath.expUpTo88(x.neg()).add(ONE));
  }

  /** sigmoid'(a) for {@code a >= 0}: {@code e s^2} with {@code e = e^-a}, {@code s = 1/(1+e)}. */
  private static FloatVector sigmoidSlope(FloatVector a) {
    FloatVector e = VectorMath.expUpTo88(a.neg());
    FloatVector s = ONE.div(e.add(ONE));
    return e.mul(s).mul(s);
  }

  /** {@code t = k (x + 0.044715 x^3)}, as {@code k x (1 + 0.044715 x^2)}. */
  private static FloatVector geluTanhArgument(FloatVector x) {
    FloatVector x2 = x.mul(x);
    return x2.fma(GELU_CUBIC, 1f).mul(x.mul(SQRT_2_OVER_PI));
  }

  private static final float SQRT_2_OVER_PI = 0.7978845608028654f;
  private static final float GELU_CUBIC = 0.044715f;

  /**
   * {@code d/dx [x s(2t)] = s + x s (1 - s) 2 t'}, with {@code t' = k (1 + 3 * 0.044715 x^2)}. The
   * second term is under 2^-1000 past |x| = 30, and there x is clamped so that it stays 0 instead
   * of becoming 0 * inf. {@code s} is {@code s(2t)}, from pass one.
   */
  private static FloatVector geluTanhSlope(FloatVector x, FloatVector s) {
    FloatVector t2 = geluTanhArgument(x).mul(2f);
    FloatVector slope = sigmoidSlope(t2.abs());
    FloatVector clamped = x.max(-30f).min(30f);
    FloatVector dt = clamped.mul(clamped).fma(3 * GELU_CUBIC, 1f).mul(2 * SQRT_2_OVER_PI);
    return clamped.mul(slope).fma(dt, s);
  }

  /*
   * The normal CDF's tail Phi(-a), a = |x|, as e^{-a^2/2} t Q(t) with t = 1/(1 + 0.3 a) and Q a
   * degree-9 polynomial: t Q(t) fits Phi(-a) e^{a^2/2}, the scaled complementary error function
   * erfcx(a/sqrt 2)/2, which falls smoothly from 1/2 at a = 0 like 1/(a sqrt(2 pi)). The fit is
   * minimax in relative error over a in [0, 14] (past 14 the tail is below 2^-146 and only an
   * absolute error counts), with each coefficient rounded to float before the next ones were
   * refitted; with the float coefficients its largest relative error, on a 2*10^7-point grid
   * against erfcx in double, is 2.063e-8. Relative error is what GELU needs: its left tail is x
   * times a tiny CDF. It replaces the Numerical Recipes fit t e^{P(t)}, whose second exponential
   * cost more than the polynomial (GELU forward 4.4x the copy time, one thread).
   *
   * Rounding, first order in u: t takes 2u (the FMA 1 + 0.3a, the division), and the tail's
   * relative sensitivity to t, |1 + t Q'(t)/Q(t)|, is at most 2.66 on the fit's range: 5.4u.
   * Horner's nine FMAs add at most 3.34u (the largest sum over steps of |partial result| t^k over
   * |Q|), the product by t one u, e^{-a^2/2} 5u (see gaussian), the product one u: the tail
   * Phi(-|x|) carries 2.1e-8 + 15.8u. Phi(x) = 1 - tail for x >= 0 (tail <= 1/2) adds one u.
   */
  private static final float TAIL_T = 0.3f;
  private static final FloatVector TAIL_0 = VectorMath.all(0.11968682f);
  private static final FloatVector TAIL_1 = VectorMath.all(0.11957048f);
  private static final FloatVector TAIL_2 = VectorMath.all(0.110235244f);
  private static final FloatVector TAIL_3 = VectorMath.all(0.07845523f);
  private static final FloatVector TAIL_4 = VectorMath.all(0.09574105f);
  private static final FloatVector TAIL_5 = VectorMath.all(-0.078151084f);
  private static final FloatVector TAIL_6 = VectorMath.all(0.1895697f);
  private static final FloatVector TAIL_7 = VectorMath.all(-0.22598588f);
  private static final FloatVector TAIL_8 = VectorMath.all(0.111231044f);
  private static final FloatVector TAIL_9 = VectorMath.all(-0.020352596f);
  private static final FloatVector V_INV_SQRT_2PI = VectorMath.all(0.3989422804014327f);
  private static final FloatVector ONE = VectorMath.all(1f);


  /**
   * {@code exp(-x^2/2)}, to 5u for every x: {@code x^2 = hi + lo} exactly (an FMA gives lo), the
   * halving is exact, and {@code e^{-lo/2} = 1 - lo/2} to within {@code (u hi)^2}; so only the
   * exponential (3u) and two roundings remain, whatever the size of x^2.
   */
  private static FloatVector gaussian(FloatVector x) {
    FloatVector hi = x.mul(x);
    FloatVector lo = x.fma(x, hi.neg());
    // Past x^2 = 208 the result is 0 in float; there hi may be inf and lo NaN.
    return VectorMath.expNonPositive(hi.mul(-0.5f)).mul(lo.mul(-0.5f).add(1f))
        .blend(0f, hi.compare(VectorOperators.GT, 208f));
  }

  /** {@code Phi(x)}: the tail {@code Phi(-|x|)} (see above), or one minus it for x >= 0. */
  private static FloatVector normalCdf(FloatVector x, FloatVector gaussian) {
    FloatVector t = ONE.div(x.abs().fma(TAIL_T, 1f));
    FloatVector q = t.fma(TAIL_9, TAIL_8).fma(t, TAIL_7).fma(t, TAIL_6).fma(t, TAIL_5).fma(t, TAIL_4)
        .fma(t, TAIL_3).fma(t, TAIL_2).fma(t, TAIL_1).fma(t, TAIL_0);
    FloatVector tail = t.mul(q).mul(gaussian);
    return tail.neg().add(1f).blend(tail, x.compare(VectorOperators.LT, 0f));
  }

}
