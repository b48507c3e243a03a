package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-tiled GEMM micro-kernels: an {@link #MR} x ({@value #NV} vectors) tile of C held in
 * accumulator registers while it walks the packed panels along k.
 *
 * <p>Why 12 x 2 on 512-bit vectors: each k step loads 2 vectors of B and broadcasts 12 scalars of
 * A into 24 FMAs. On AVX-512 that is 24 accumulators + 2 B vectors + 1 broadcast = 27 of the 32
 * zmm registers, so C2 keeps the whole tile in registers without spilling, and 24 independent FMA
 * chains cover the 4-cycle FMA latency on both FMA ports several times over.
 *
 * <p>Why 4 x 2 on narrower vectors: AVX2 has 16 ymm registers. The 12 x 2 tile cannot fit, and
 * neither did 6 x 2 (12 accumulators + 2 B vectors + 1 broadcast = 15 on paper): C2 hoists four
 * broadcasts to the top of the k loop and kept two accumulators on the stack, a load and a store
 * around their FMAs on every k step. Measured on a Zen 3 machine (256-bit, one thread, 512^3):
 * 6 x 2 ran at 26-28 GFLOPS, 5 x 2 at 23-28, 4 x 2 at 37-65 with no spills in its loop (the
 * machine is shared and its figures bimodal). 8 accumulators still cover the 4-cycle FMA latency
 * on 2 ports. 128-bit targets get the same tile.
 *
 * <p>The accumulators are plain locals that never leave these methods: passing a vector to a call
 * that C2 does not inline boxes it and allocates on every k step. Nothing here calls out while
 * vectors are live except into the Vector API's own intrinsics. The code is written out in full
 * (generated once, then kept by hand) because Java has no way to unroll over register names.
 */
final class GemmMicroKernel {
  static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  static final int LANES = SPECIES.length();
  /** Rows of C per tile: the broadcast side. 12 with 512-bit vectors, 4 below (see above). */
  static final int MR = SPECIES.vectorBitSize() >= 512 ? 12 : 4;
  /** Vectors of C per tile row. */
  static final int NV = 2;
  /** Columns of C per tile: the vector side. */
  static final int NR = NV * LANES;

  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private GemmMicroKernel() {}

  /**
   * Computes the tile {@code T = Ap * Bp} over {@code kc} steps, where {@code Ap} is an MR-row
   * packed panel stored row by row, row i from {@code Ap[i*KC]} ({@link GemmPacking#packA}), and {@code Bp} an NR-column packed panel
   * ({@code Bp[p*NR + j]}), and parks it row-major in {@code tile} (MR*NR floats) for
   * {@link #store} to merge into C.
   *
   * <p>Why C is not touched here: this method has to stay small. C1 gives up on a larger version
   * ("out of virtual registers"), and a method C1 cannot compile at tier 3 may stay in tier-2 code
   * for good, where every vector is a boxed object: measured, 0.8 GFLOPS and 165 MB allocated
   * per 256^3 call, in about half of all JVM runs. Parking 24 vectors in an L1-resident tile and
   * reading them back costs under 1% of a 256-step call.
   *
   * <p>The packed panels are {@code float[]} rather than segments on purpose: C2 removes the
   * bounds checks of int-indexed array loads from this loop entirely, while (measured on JDK 25)
   * it kept a compare-and-branch on 11 of the 12 scalar segment reads per k step, which made the
   * loop issue-bound at about half of FMA peak.
   *
   * @param ap packed A, starting at float index {@code apOff}
   * @param bp packed B, starting at float index {@code bpOff}
   * @param tile receives T, row-major, MR rows of NR floats
   */
  static void compute(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile) {
    // MR is a constant: C2 keeps one branch.
    if (MR == 12) {
      compute12(kc, ap, apOff, bp, bpOff, tile);
    } else {
      compute4(kc, ap, apOff, bp, bpOff, tile);
    }
  }

  /** {@link #compute} for MR = 12. */
  private static void compute12(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    FloatVector c4_0 = FloatVector.zero(SPECIES), c4_1 = FloatVector.zero(SPECIES);
    FloatVector c5_0 = FloatVector.zero(SPECIES), c5_1 = FloatVector.zero(SPECIES);
    FloatVector c6_0 = FloatVector.zero(SPECIES), c6_1 = FloatVector.zero(SPECIES);
    FloatVector c7_0 = FloatVector.zero(SPECIES), c7_1 = FloatVector.zero(SPECIES);
    FloatVector c8_0 = FloatVector.zero(SPECIES), c8_1 = FloatVector.zero(SPECIES);
    FloatVector c9_0 = FloatVector.zero(SPECIES), c9_1 = FloatVector.zero(SPECIES);
    FloatVector c10_0 = FloatVector.zero(SPECIES), c10_1 = FloatVector.zero(SPECIES);
    FloatVector c11_0 = FloatVector.zero(SPECIES), c11_1 = FloatVector.zero(SPECIES);
    // Row i of the A panel starts i * pitch floats in; pitch is a constant to C2, which folds
    // each row's offset into its broadcast's address.
    final int pitch = GemmBlocking.KC;
    for (int p = 0; p < kc; p++) {
      int ao = apOff + p;
      int bo = bpOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(SPECIES, bp, bo);
      FloatVector b1 = FloatVector.fromArray(SPECIES, bp, bo + 1 * LANES);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[ao]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 4 * pitch]);
      c4_0 = a.fma(b0, c4_0); c4_1 = a.fma(b1, c4_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 5 * pitch]);
      c5_0 = a.fma(b0, c5_0); c5_1 = a.fma(b1, c5_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 6 * pitch]);
      c6_0 = a.fma(b0, c6_0); c6_1 = a.fma(b1, c6_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 7 * pitch]);
      c7_0 = a.fma(b0, c7_0); c7_1 = a.fma(b1, c7_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 8 * pitch]);
      c8_0 = a.fma(b0, c8_0); c8_1 = a.fma(b1, c8_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 9 * pitch]);
      c9_0 = a.fma(b0, c9_0); c9_1 = a.fma(b1, c9_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 10 * pitch]);
      c10_0 = a.fma(b0, c10_0); c10_1 = a.fma(b1, c10_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 11 * pitch]);
      c11_0 = a.fma(b0, c11_0); c11_1 = a.fma(b1, c11_1);
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
    c4_0.intoArray(tile, 8 * LANES); c4_1.intoArray(tile, 9 * LANES);
    c5_0.intoArray(tile, 10 * LANES); c5_1.intoArray(tile, 11 * LANES);
    c6_0.intoArray(tile, 12 * LANES); c6_1.intoArray(tile, 13 * LANES);
    c7_0.intoArray(tile, 14 * LANES); c7_1.intoArray(tile, 15 * LANES);
    c8_0.intoArray(tile, 16 * LANES); c8_1.intoArray(tile, 17 * LANES);
    c9_0.intoArray(tile, 18 * LANES); c9_1.intoArray(tile, 19 * LANES);
    c10_0.intoArray(tile, 20 * LANES); c10_1.intoArray(tile, 21 * LANES);
    c11_0.intoArray(tile, 22 * LANES); c11_1.intoArray(tile, 23 * LANES);
  }

  /** {@link #compute} for MR = 4. */
  private static void compute4(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    // Row i of the A panel starts i * pitch floats in; pitch is a constant to C2, which folds
    // each row's offset into its broadcast's address.
    final int pitch = GemmBlocking.KC;
    // The A and B indices are the loop's own variables rather than apOff + p and bpOff + p*NR:
    // C2 then keeps 7 integer instructions per k step instead of 10 (20 in all instead of 23,
    // read in the disassembly). The count matters when another thread shares the core's
    // front end: on a shared Zen 3 VM this kernel lost more to such stretches than OpenBLAS
    // (about 35% against 15%). Measured alone, alternating in one JVM, 1.00-1.05x at 1024^3.
    for (int ao = apOff, bo = bpOff, end = apOff + kc; ao < end; ao++, bo += NR) {
      FloatVector b0 = FloatVector.fromArray(SPECIES, bp, bo);
      FloatVector b1 = FloatVector.fromArray(SPECIES, bp, bo + 1 * LANES);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[ao]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1);
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
  }

  /**
   * Merges the top-left {@code mr x nr} corner of a tile into C: {@code C = alpha*T + beta*C}, or
   * {@code C = alpha*T} without reading C when {@code beta == 0}. Edge tiles use lane masks, which
   * round exactly as full vectors do, so an element gets the same bits whether a thread split puts
   * it in a full tile or in an edge tile.
   */
  static void store(float[] tile, MemorySegment c, long cOff, long ldcBytes, int mr, int nr,
      float alpha, float beta) {
    FloatVector va = FloatVector.broadcast(SPECIES, alpha);
    FloatVector vb = FloatVector.broadcast(SPECIES, beta);
    for (int i = 0; i < mr; i++) {
      long row = cOff + i * ldcBytes;
      for (int v = 0; v < NV; v++) {
        int col = v * LANES;
        if (col >= nr) {
          break;
        }
        long at = row + col * 4L;
        FloatVector t = FloatVector.fromArray(SPECIES, tile, i * NR + col);
        if (col + LANES <= nr) {
          FloatVector r = beta == 0f ? t.mul(va)
              : t.fma(va, FloatVector.fromMemorySegment(SPECIES, c, at, ORDER).mul(vb));
          r.intoMemorySegment(c, at, ORDER);
        } else {
          VectorMask<Float> valid = SPECIES.indexInRange(col, nr);
          FloatVector r = beta == 0f ? t.mul(va)
              : t.fma(va, FloatVector.fromMemorySegment(SPECIES, c, at, ORDER, valid).mul(vb));
          r.intoMemorySegment(c, at, ORDER, valid);
        }
      }
    }
  }
}
