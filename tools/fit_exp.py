"""Fits the degree-6 polynomial of VectorMath.expNonPositive and checks it, in double.

p(r) = 1 + r + X2 r^2 + ... + X6 r^6 approximates e^r on |r| <= ln2/2 with minimax relative
error (Remez exchange on a dense grid). The constant and linear coefficients are fixed at 1;
X2 .. X6 are rounded to float one at a time, from X2 up, and the higher ones refitted after each.
Then the polynomial is evaluated with float coefficients and float FMAs (emulated: the product of
two floats is exact in double) on 4 * 10^6 points, beside the degree-7 Taylor polynomial it
replaced, and the largest relative errors are printed in units of u = 2^-24.

Run: python3 tools/fit_exp.py   (needs numpy)
"""
from math import log

import numpy as np

HALF_LN2 = log(2) / 2 * 1.0005  # a little past ln2/2, so the ends are covered after rounding
U = 2.0 ** -24


def minimax(fixed, degree):
    """Coefficients 0..degree, the first len(fixed) given, the rest minimax in relative error."""
    m = len(fixed)
    free = degree + 1 - m
    n = free + 1
    x = HALF_LN2 * np.cos(np.pi * np.arange(n) / (n - 1))[::-1]
    grid = np.linspace(-HALF_LN2, HALF_LN2, 400001)
    for _ in range(40):
        a = np.zeros((n, n))
        b = np.zeros(n)
        for i in range(n):
            a[i, :free] = x[i] ** np.arange(m, degree + 1)
            a[i, free] = -((-1) ** i) * np.exp(x[i])
            b[i] = np.exp(x[i]) - sum(fixed[k] * x[i] ** k for k in range(m))
        coefficients = list(fixed) + list(np.linalg.solve(a, b)[:free])
        err = (np.polyval(coefficients[::-1], grid) - np.exp(grid)) / np.exp(grid)
        segments = np.split(np.arange(len(grid)), np.where(np.diff(np.sign(err)) != 0)[0] + 1)
        if len(segments) != n:
            break
        x = grid[[s[np.argmax(np.abs(err[s]))] for s in segments]]
    return coefficients


def horner_float(r, coefficients):
    p = np.full_like(r, np.float32(coefficients[-1]))
    for c in coefficients[-2::-1]:
        p = (p.astype(np.float64) * r.astype(np.float64) + np.float64(np.float32(c))).astype(np.float32)
    return p


def main():
    coefficients = [1.0, 1.0]
    while len(coefficients) < 7:
        coefficients.append(float(np.float32(minimax(coefficients, 6)[len(coefficients)])))
    print("X2 .. X6 =", ", ".join(str(np.float32(c)) + "f" for c in coefficients[2:]))
    grid = np.linspace(-HALF_LN2, HALF_LN2, 2000001)
    exact = np.exp(grid)
    print("fit error with float coefficients: %.3f u" %
          (np.max(np.abs(np.polyval(coefficients[::-1], grid) - exact) / exact) / U))
    r = np.linspace(-HALF_LN2, HALF_LN2, 4000001).astype(np.float32)
    exact = np.exp(r.astype(np.float64))
    taylor7 = [1.0, 1.0, 0.5, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040]
    for name, c in (("degree-6 minimax", coefficients), ("degree-7 Taylor", taylor7)):
        p = horner_float(r, c).astype(np.float64)
        print("%s with float FMAs: %.3f u" % (name, np.max(np.abs(p - exact) / exact) / U))


if __name__ == "__main__":
    main()
