//! libjpeg's accurate integer inverse DCT (`jpeg_idct_islow` in `jidctint.c`).
//!
//! Arithmetic wraps instead of trapping: coefficients from a valid 8-bit file never overflow
//! 32 bits, and corrupt ones must not panic.

const CONST_BITS: i32 = 13;
const PASS1_BITS: i32 = 2;

const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

type Lanes = [i32; 8];

#[inline(always)]
fn add(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_add(b[i]))
}

#[inline(always)]
fn sub(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_sub(b[i]))
}

#[inline(always)]
fn mulc(a: Lanes, c: i32) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_mul(c))
}

#[inline(always)]
fn shl(a: Lanes, n: u32) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_shl(n))
}

/// Rounding right shift (`DESCALE`).
#[inline(always)]
fn descale(a: Lanes, n: i32) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_add(1 << (n - 1)) >> n)
}

/// One 1-D pass of `jpeg_idct_islow` on eight independent lanes (eight columns, or eight
/// rows after a transpose), so that the compiler can use SIMD. libjpeg's shortcut for
/// all-zero AC columns gives the same numbers and is left out.
#[inline(always)]
fn idct_1d(s: [Lanes; 8]) -> [Lanes; 8] {
    let z2 = s[2];
    let z3 = s[6];
    let z1 = mulc(add(z2, z3), FIX_0_541196100);
    let tmp2 = add(z1, mulc(z3, -FIX_1_847759065));
    let tmp3 = add(z1, mulc(z2, FIX_0_765366865));
    let tmp0 = shl(add(s[0], s[4]), CONST_BITS as u32);
    let tmp1 = shl(sub(s[0], s[4]), CONST_BITS as u32);
    let tmp10 = add(tmp0, tmp3);
    let tmp13 = sub(tmp0, tmp3);
    let tmp11 = add(tmp1, tmp2);
    let tmp12 = sub(tmp1, tmp2);

    let (t0, t1, t2, t3) = (s[7], s[5], s[3], s[1]);
    let z1 = add(t0, t3);
    let z2 = add(t1, t2);
    let z3 = add(t0, t2);
    let z4 = add(t1, t3);
    let z5 = mulc(add(z3, z4), FIX_1_175875602);
    let t0 = mulc(t0, FIX_0_298631336);
    let t1 = mulc(t1, FIX_2_053119869);
    let t2 = mulc(t2, FIX_3_072711026);
    let t3 = mulc(t3, FIX_1_501321110);
    let z1 = mulc(z1, -FIX_0_899976223);
    let z2 = mulc(z2, -FIX_2_562915447);
    let z3 = add(mulc(z3, -FIX_1_961570560), z5);
    let z4 = add(mulc(z4, -FIX_0_390180644), z5);
    let t0 = add(add(t0, z1), z3);
    let t1 = add(add(t1, z2), z4);
    let t2 = add(add(t2, z2), z3);
    let t3 = add(add(t3, z1), z4);

    [
        add(tmp10, t3),
        add(tmp11, t2),
        add(tmp12, t1),
        add(tmp13, t0),
        sub(tmp13, t0),
        sub(tmp12, t1),
        sub(tmp11, t2),
        sub(tmp10, t3),
    ]
}

#[inline(always)]
fn transpose(m: [Lanes; 8]) -> [Lanes; 8] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// Level shift and clamp of a pass-2 output. libjpeg's C code looks the value up modulo 1024
/// in `range_limit`, which wraps values beyond ±512; its x86 and Arm SIMD code (what Pillow's
/// and OpenCV's wheels run) saturates instead. The two agree on everything an 8-bit encoder
/// can produce; this follows the SIMD code.
#[inline(always)]
fn range_limit(x: i32) -> u8 {
    (x.wrapping_add(128)).clamp(0, 255) as u8
}

/// The dequantised value as libjpeg-turbo's SIMD IDCT computes it: a 16-bit product
/// (`pmullw`); a valid file never needs more.
#[inline(always)]
fn dequantize(c: i16, q: i32) -> i32 {
    (c as i32).wrapping_mul(q) as i16 as i32
}

/// Inverse-transforms one block of quantised coefficients (natural order) with its
/// quantisation table (natural order) into 8 rows of `out` starting at `offset`, `stride`
/// bytes apart.
#[inline]
pub(crate) fn idct_islow(
    coef: &[i16; 64],
    quant: &[i32; 64],
    out: &mut [u8],
    offset: usize,
    stride: usize,
) {
    let rows: [Lanes; 8] = std::array::from_fn(|r| {
        std::array::from_fn(|c| dequantize(coef[r * 8 + c], quant[r * 8 + c]))
    });
    // Pass 1 on columns: lane c of `ws[r]` is row r of column c.
    let ws = idct_1d(rows).map(|v| descale(v, CONST_BITS - PASS1_BITS));
    // Pass 2 on rows: after the transpose lane r of `t[k]` is ws[r][k].
    let px = idct_1d(transpose(ws)).map(|v| descale(v, CONST_BITS + PASS1_BITS + 3));
    let px = transpose(px);
    for (r, row) in px.iter().enumerate() {
        let Some(dst) = out.get_mut(offset + r * stride..offset + r * stride + 8) else {
            return;
        };
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = range_limit(v);
        }
    }
}

/// [`idct_islow`] of a block whose only nonzero coefficient is the DC one: every pass-1
/// output is `dc << 2` and every pixel `(dc + 4) >> 3`, exactly as the full transform gives.
#[inline]
pub(crate) fn idct_dc_only(dc: i16, quant0: i32, out: &mut [u8], offset: usize, stride: usize) {
    let v = range_limit(dequantize(dc, quant0).wrapping_add(4) >> 3);
    for r in 0..8 {
        if let Some(dst) = out.get_mut(offset + r * stride..offset + r * stride + 8) {
            dst.fill(v);
        }
    }
}
