package dev.lanes.verification;

import dev.lanes.kernels.Transpose;
import java.util.SplittableRandom;
import org.quicktheories.core.Gen;
import org.quicktheories.generators.SourceDSL;

/**
 * One random GEMM call: shapes, transposes, padded leading dimensions, offsets, alpha, beta and a
 * seed for the matrix contents. Contents come from the seed rather than from the generator so
 * that QuickTheories shrinks the shape, and the printed case is short enough to read.
 */
public record GemmCase(Transpose transA, Transpose transB, int m, int n, int k,
    int padA, int padB, int padC, int offA, int offB, int offC,
    float alpha, float beta, long contentSeed) {

  /** Scalars that exercise the BLAS special cases (0, 1) as well as ordinary values. */
  private static final float[] SCALARS = {0f, 1f, -1f, 0.5f, 2.25f, -0.75f};

  /** Random cases with m, n, k in 0..maxDim, which includes primes and non-multiples of 16 and 32. */
  public static Gen<GemmCase> cases(int maxDim) {
    return cases(0, maxDim);
  }

  /** Random cases with m, n, k in minDim..maxDim. */
  public static Gen<GemmCase> cases(int minDim, int maxDim) {
    return cases(minDim, maxDim, minDim, maxDim);
  }

  /** Random cases with m and n in minDim..maxDim and k in minK..maxK. */
  public static Gen<GemmCase> cases(int minDim, int maxDim, int minK, int maxK) {
    Gen<Transpose> trans = SourceDSL.arbitrary().enumValues(Transpose.class);
    Gen<Integer> dim = SourceDSL.integers().between(minDim, maxDim);
    Gen<Integer> depth = SourceDSL.integers().between(minK, maxK);
    Gen<Integer> pad = SourceDSL.integers().between(0, 7);
    Gen<Integer> off = SourceDSL.integers().between(0, 40);
    Gen<Float> scalar = SourceDSL.integers().between(0, SCALARS.length - 1).map(i -> SCALARS[i]);
    Gen<Long> seed = SourceDSL.longs().all();
    return trans.zip(trans, (x, y) -> new Transpose[] {x, y})
        .zip(dim, dim, depth, (t, m, n, k) -> new Object[] {t, m, n, k})
        .zip(pad, pad, pad, (o, pa, pb, pc) -> new Object[] {o, new int[] {pa, pb, pc}})
        .zip(off, off, off, (o, oa, ob, oc) -> new Object[] {o, new int[] {oa, ob, oc}})
        .zip(scalar, scalar, seed, (o, alpha, beta, s) -> build(o, alpha, beta, s));
  }

  private static GemmCase build(Object[] o, float alpha, float beta, long seed) {
    Object[] withPads = (Object[]) o[0];
    int[] offs = (int[]) o[1];
    Object[] shape = (Object[]) withPads[0];
    int[] pads = (int[]) withPads[1];
    Transpose[] t = (Transpose[]) shape[0];
    return new GemmCase(t[0], t[1], (Integer) shape[1], (Integer) shape[2], (Integer) shape[3],
        pads[0], pads[1], pads[2], offs[0], offs[1], offs[2], alpha, beta, seed);
  }

  public boolean transposedA() {
    return transA == Transpose.TRANSPOSE;
  }

  public boolean transposedB() {
    return transB == Transpose.TRANSPOSE;
  }

  /** Rows and columns of A as stored. */
  public int aRows() {
    return transposedA() ? k : m;
  }

  public int aCols() {
    return transposedA() ? m : k;
  }

  public int bRows() {
    return transposedB() ? n : k;
  }

  public int bCols() {
    return transposedB() ? k : n;
  }

  public int lda() {
    return Math.max(1, aCols()) + padA;
  }

  public int ldb() {
    return Math.max(1, bCols()) + padB;
  }

  public int ldc() {
    return Math.max(1, n) + padC;
  }

  /** Floats needed for A, B and C including offset and a little slack after the last element. */
  public int aLength() {
    return offA + aRows() * lda() + 3;
  }

  public int bLength() {
    return offB + bRows() * ldb() + 3;
  }

  public int cLength() {
    return offC + m * ldc() + 3;
  }

  public float[] a() {
    return fill(aLength(), 1);
  }

  public float[] b() {
    return fill(bLength(), 2);
  }

  /** C's initial contents; unused slots (padding, offsets) hold values the kernel must not touch. */
  public float[] c() {
    return fill(cLength(), 3);
  }

  /** Uniform values in [-1, 1): both signs, so the bound's |A||B| term differs from |AB|. */
  private float[] fill(int length, int stream) {
    SplittableRandom random = new SplittableRandom(contentSeed * 31 + stream);
    float[] x = new float[length];
    for (int i = 0; i < length; i++) {
      x[i] = (float) (random.nextDouble() * 2 - 1);
    }
    return x;
  }
}
