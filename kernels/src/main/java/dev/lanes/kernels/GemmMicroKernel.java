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
 * <p>Why 2 x 4, two k steps per loop iteration, on narrower vectors: AVX2 has 16 ymm registers,
 * so 12 x 2 cannot fit. What limits the narrower tiles is how C2 schedules them:
 * <ul>
 *   <li>6 x 2 (12 accumulators + 2 B vectors + 1 broadcast = 15 on paper): C2 hoists four
 *       broadcasts to the top of the k loop and keeps two accumulators on the stack. Measured on a
 *       Zen 3 machine (one thread, 512^3): 6 x 2 26-28 GFLOPS, 5 x 2 23-28, 4 x 2 37-65.
 *   <li>4 x 2, one k step per iteration, fits, but C2 neither unrolls the loop nor keeps the B
 *       index as an induction variable of its own: 20 instructions per k step (4 broadcasts, 2
 *       loads, 8 FMAs and 6 integer), 2.5 per FMA. Unrolled by hand, C2 hoists all 8 broadcasts
 *       of the two steps and spills again.
 *   <li>2 x 4 unrolled by two: the hoisted broadcasts of both steps are 4 registers, so
 *       8 accumulators + 4 broadcasts + the B vector in use fit, with no spill (read in the
 *       disassembly): 34 instructions per two k steps, 2.1 per FMA.
 * </ul>
 * The Zen 3 machine is a shared VM whose speed alternates between fast and slow stretches, and in
 * the slow ones instructions per FMA are what counts. Kernel alone, L1-resident, KC = 128,
 * alternating call by call in one JVM and sorted into quartiles by the 4 x 2 kernel's speed:
 * 2 x 4 unrolled ran 1.11-1.33x as fast in the three slow quartiles and 0.96-1.05x in the fast
 * one. 128-bit targets get the same tile (8 accumulators still cover the 4-cycle FMA latency on
 * 2 ports).
 *
 * <p>Why the 2 x 4 kernel writes C itself: a full tile is merged into C straight from the
 * accumulators, while 12 x 2 parks its tile in an array for {@link #store}. The tile is 2 x 32
 * floats, so there are twice as many tiles as with 4 x 2 and the round trip through the array
 * weighed more: merging in registers ran 0.97-1.17x as fast at 1024^3 (one thread, six rounds
 * alternating in one JVM, five of them above 1.05). Edge tiles (fewer than MR
 * rows or NR columns) still go through the array and {@link #store}'s masks.
 *
 * <p>The accumulators are plain locals that never leave these methods: passing a vector to a call
 * that C2 does not inline boxes it and allocates on every k step. Nothing here calls out while
 * vectors are live except into the Vector API's own intrinsics. The code is written out in full
 * (generated once, then kept by hand) because Java has no way to unroll over register names.
 */
final class GemmMicroKernel {
  static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  static final int LANES = SPECIES.length();
  /** Rows of C per tile: the broadcast side. 12 with 512-bit vectors, 2 below (see above). */
  static final int MR = SPECIES.vectorBitSize() >= 512 ? 12 : 2;
  /** Vectors of C per tile row: 2 with 512-bit vectors, 4 below (see above). */
  static final int NV = SPECIES.vectorBitSize() >= 512 ? 2 : 4;
  /** Columns of C per tile: the vector side. */
  static final int NR = NV * LANES;

  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private GemmMicroKernel() {}

  /**
   * Computes the tile {@code T = Ap * Bp} over {@code kc} steps, where {@code Ap} is an MR-row
   * packed panel stored row by row, row i from {@code Ap[i*KC]} ({@link GemmPacking#packA}), and
   * {@code Bp} an NR-column packed panel ({@code Bp[p*NR + j]}), and merges its top-left
   * {@code mr x nr} corner into C as {@link #store} describes.
   *
   * <p>Why the 12 x 2 kernel does not touch C itself: that method has to stay small. C1 gives up on
   * a larger version ("out of virtual registers"), and a method C1 cannot compile at tier 3 may
   * stay in tier-2 code for good, where every vector is a boxed object: measured, 0.8 GFLOPS and
   * 165 MB allocated per 256^3 call, in about half of all JVM runs. Parking 24 vectors in an
   * L1-resident tile and reading them back costs under 1% of a 256-step call. The 2 x 4 kernel,
   * with 8 accumulators, compiles at tier 3 with its merge into C (checked with
   * {@code -XX:+PrintCompilation}).
   *
   * <p>The packed panels are {@code float[]} rather than segments on purpose: C2 removes the
   * bounds checks of int-indexed array loads from this loop entirely, while (measured on JDK 25)
   * it kept a compare-and-branch on 11 of the 12 scalar segment reads per k step, which made the
   * loop issue-bound at about half of FMA peak.
   *
   * @param ap packed A, starting at float index {@code apOff}
   * @param bp packed B, starting at float index {@code bpOff}
   * @param tile scratch for one tile, MR rows of NR floats
   */
  static void computeAndStore(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile, MemorySegment c,
      long cAt, long ldcBytes, int mr, int nr, float alpha, float beta) {
    // MR is a constant: C2 keeps one branch.
    if (MR == 12) {
      if (mr > 8) {
        compute12(kc, ap, apOff, bp, bpOff, tile);
      } else if (mr > 4) {
        compute8(kc, ap, apOff, bp, bpOff, tile);
      } else {
        compute4(kc, ap, apOff, bp, bpOff, tile);
      }
      store(tile, c, cAt, ldcBytes, mr, nr, alpha, beta);
    } else {
      compute2(kc, ap, apOff, bp, bpOff, tile, c, cAt, ldcBytes, mr, nr, alpha, beta);
    }
  }

  /**
   * {@link #compute12} for an edge tile of at most 4 rows: the first 4 rows of the 12-row
   * panel, with the same FMA chain per element, so the same bits. Rows past the edge would only
   * multiply zeros: a 64-row matrix is five full tiles and a 4-row one, and with 12 rows computed
   * for that one, 8 of the 72 rows' work was spent on zeros.
   */
  private static void compute4(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
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
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
  }

  /** {@link #compute4} for an edge tile of 5 to 8 rows (a 128- or 2048-row matrix ends in 8). */
  private static void compute8(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    FloatVector c4_0 = FloatVector.zero(SPECIES), c4_1 = FloatVector.zero(SPECIES);
    FloatVector c5_0 = FloatVector.zero(SPECIES), c5_1 = FloatVector.zero(SPECIES);
    FloatVector c6_0 = FloatVector.zero(SPECIES), c6_1 = FloatVector.zero(SPECIES);
    FloatVector c7_0 = FloatVector.zero(SPECIES), c7_1 = FloatVector.zero(SPECIES);
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
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
    c4_0.intoArray(tile, 8 * LANES); c4_1.intoArray(tile, 9 * LANES);
    c5_0.intoArray(tile, 10 * LANES); c5_1.intoArray(tile, 11 * LANES);
    c6_0.intoArray(tile, 12 * LANES); c6_1.intoArray(tile, 13 * LANES);
    c7_0.intoArray(tile, 14 * LANES); c7_1.intoArray(tile, 15 * LANES);
  }

  /** The k loop of {@link #computeAndStore} for MR = 12: the tile goes to {@code tile}. */
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

  /**
   * {@link #computeAndStore} for MR = 2, NV = 4, two k steps per loop iteration. Each k step
   * broadcasts 2 scalars of A and loads 4 vectors of B into 8 FMAs. The merge into C rounds as
   * {@link #store} does (alpha*T, or alpha*T + beta*C in one FMA), so an element gets the same bits
   * in a full tile and in an edge tile.
   */
  private static void compute2(int kc, float[] ap, int apOff, float[] bp, int bpOff, float[] tile, MemorySegment c,
      long cAt, long ldcBytes, int mr, int nr, float alpha, float beta) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c0_2 = FloatVector.zero(SPECIES), c0_3 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c1_2 = FloatVector.zero(SPECIES), c1_3 = FloatVector.zero(SPECIES);
    final int pitch = GemmBlocking.KC;
    int ao = apOff;
    int bo = bpOff;
    for (int end = apOff + (kc & ~1); ao < end; ao += 2, bo += 2 * NR) {
      FloatVector a0 = FloatVector.broadcast(SPECIES, ap[ao]);
      FloatVector a1 = FloatVector.broadcast(SPECIES, ap[ao + pitch]);
      FloatVector b;
      b = FloatVector.fromArray(SPECIES, bp, bo);
      c0_0 = a0.fma(b, c0_0); c1_0 = a1.fma(b, c1_0);
      b = FloatVector.fromArray(SPECIES, bp, bo + LANES);
      c0_1 = a0.fma(b, c0_1); c1_1 = a1.fma(b, c1_1);
      b = FloatVector.fromArray(SPECIES, bp, bo + 2 * LANES);
      c0_2 = a0.fma(b, c0_2); c1_2 = a1.fma(b, c1_2);
      b = FloatVector.fromArray(SPECIES, bp, bo + 3 * LANES);
      c0_3 = a0.fma(b, c0_3); c1_3 = a1.fma(b, c1_3);
      a0 = FloatVector.broadcast(SPECIES, ap[ao + 1]);
      a1 = FloatVector.broadcast(SPECIES, ap[ao + 1 + pitch]);
      b = FloatVector.fromArray(SPECIES, bp, bo + NR);
      c0_0 = a0.fma(b, c0_0); c1_0 = a1.fma(b, c1_0);
      b = FloatVector.fromArray(SPECIES, bp, bo + NR + LANES);
      c0_1 = a0.fma(b, c0_1); c1_1 = a1.fma(b, c1_1);
      b = FloatVector.fromArray(SPECIES, bp, bo + NR + 2 * LANES);
      c0_2 = a0.fma(b, c0_2); c1_2 = a1.fma(b, c1_2);
      b = FloatVector.fromArray(SPECIES, bp, bo + NR + 3 * LANES);
      c0_3 = a0.fma(b, c0_3); c1_3 = a1.fma(b, c1_3);
    }
    if ((kc & 1) != 0) {
      // The odd last k step: the first half of the loop body, written out again because Java
      // cannot pass the accumulators to a helper without boxing them.
      FloatVector a0 = FloatVector.broadcast(SPECIES, ap[ao]);
      FloatVector a1 = FloatVector.broadcast(SPECIES, ap[ao + pitch]);
      FloatVector b;
      b = FloatVector.fromArray(SPECIES, bp, bo);
      c0_0 = a0.fma(b, c0_0); c1_0 = a1.fma(b, c1_0);
      b = FloatVector.fromArray(SPECIES, bp, bo + LANES);
      c0_1 = a0.fma(b, c0_1); c1_1 = a1.fma(b, c1_1);
      b = FloatVector.fromArray(SPECIES, bp, bo + 2 * LANES);
      c0_2 = a0.fma(b, c0_2); c1_2 = a1.fma(b, c1_2);
      b = FloatVector.fromArray(SPECIES, bp, bo + 3 * LANES);
      c0_3 = a0.fma(b, c0_3); c1_3 = a1.fma(b, c1_3);
    }
    if (mr == MR && nr == NR) {
      long r0 = cAt;
      long r1 = cAt + ldcBytes;
      final long v = LANES * 4L;
      FloatVector va = FloatVector.broadcast(SPECIES, alpha);
      if (beta == 0f) {
        c0_0.mul(va).intoMemorySegment(c, r0, ORDER);
        c0_1.mul(va).intoMemorySegment(c, r0 + v, ORDER);
        c0_2.mul(va).intoMemorySegment(c, r0 + 2 * v, ORDER);
        c0_3.mul(va).intoMemorySegment(c, r0 + 3 * v, ORDER);
        c1_0.mul(va).intoMemorySegment(c, r1, ORDER);
        c1_1.mul(va).intoMemorySegment(c, r1 + v, ORDER);
        c1_2.mul(va).intoMemorySegment(c, r1 + 2 * v, ORDER);
        c1_3.mul(va).intoMemorySegment(c, r1 + 3 * v, ORDER);
      } else {
        FloatVector vb = FloatVector.broadcast(SPECIES, beta);
        c0_0.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r0, ORDER).mul(vb)).intoMemorySegment(c, r0, ORDER);
        c0_1.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r0 + v, ORDER).mul(vb)).intoMemorySegment(c, r0 + v, ORDER);
        c0_2.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r0 + 2 * v, ORDER).mul(vb)).intoMemorySegment(c, r0 + 2 * v, ORDER);
        c0_3.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r0 + 3 * v, ORDER).mul(vb)).intoMemorySegment(c, r0 + 3 * v, ORDER);
        c1_0.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r1, ORDER).mul(vb)).intoMemorySegment(c, r1, ORDER);
        c1_1.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r1 + v, ORDER).mul(vb)).intoMemorySegment(c, r1 + v, ORDER);
        c1_2.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r1 + 2 * v, ORDER).mul(vb)).intoMemorySegment(c, r1 + 2 * v, ORDER);
        c1_3.fma(va, FloatVector.fromMemorySegment(SPECIES, c, r1 + 3 * v, ORDER).mul(vb)).intoMemorySegment(c, r1 + 3 * v, ORDER);
      }
      return;
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c0_2.intoArray(tile, 2 * LANES); c0_3.intoArray(tile, 3 * LANES);
    c1_0.intoArray(tile, 4 * LANES); c1_1.intoArray(tile, 5 * LANES);
    c1_2.intoArray(tile, 6 * LANES); c1_3.intoArray(tile, 7 * LANES);
    store(tile, c, cAt, ldcBytes, mr, nr, alpha, beta);
  }

  /**
   * Merges the top-left {@code mr x nr} corner of a tile into C: {@code C = alpha*T + beta*C}, or
   * {@code C = alpha*T} without reading C when {@code beta == 0}. Edge tiles use lane masks, which
   * round exactly as full vectors do, so an element gets the same bits whether a thread split puts
   * it in a full tile or in an edge tile.
   */
  static void store(float[] tile, MemorySegment c, long cOff, long ldcBytes, int mr, int nr,
      float alpha, float beta) {
    if (mr == MR && nr == NR) {
      storeFull(tile, c, cOff, ldcBytes, alpha, beta);
      return;
    }
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

  /**
   * {@link #store} for a whole tile, with the same operations per element. Loops with constant
   * bounds and no per-vector branch, which C2 unrolls: storing a 12 x 32 tile took 16 ns instead
   * of 44 with beta = 0 and 20 instead of 58 otherwise (alone, in a loop); at 64^3 the ten full
   * tiles are 10 of the 12 stores.
   */
  private static void storeFull(float[] tile, MemorySegment c, long cOff, long ldcBytes, float alpha, float beta) {
    FloatVector va = FloatVector.broadcast(SPECIES, alpha);
    if (beta == 0f) {
      for (int i = 0; i < MR; i++) {
        long row = cOff + i * ldcBytes;
        for (int v = 0; v < NV; v++) {
          FloatVector.fromArray(SPECIES, tile, i * NR + v * LANES).mul(va)
              .intoMemorySegment(c, row + 4L * v * LANES, ORDER);
        }
      }
      return;
    }
    FloatVector vb = FloatVector.broadcast(SPECIES, beta);
    for (int i = 0; i < MR; i++) {
      long row = cOff + i * ldcBytes;
      for (int v = 0; v < NV; v++) {
        long at = row + 4L * v * LANES;
        FloatVector.fromArray(SPECIES, tile, i * NR + v * LANES)
            .fma(va, FloatVector.fromMemorySegment(SPECIES, c, at, ORDER).mul(vb))
            .intoMemorySegment(c, at, ORDER);
      }
    }
  }
}
