package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lanes.kernels.Gemm;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * The build runs the GEMM properties once per vector width (preferred, 256, 128) in separate JVMs.
 * This checks that each of those JVMs really runs the kernels at the width it claims to test.
 */
class VectorWidthTest {
  @Test
  void kernelsRunAtTheRequestedWidth() {
    String expected = System.getProperty("lanes.test.expectedVectorBits", "");
    int bits = expected.isBlank() ? FloatVector.SPECIES_PREFERRED.vectorBitSize() : Integer.parseInt(expected);
    assertEquals(bits, Gemm.vectorBits());
  }
}
