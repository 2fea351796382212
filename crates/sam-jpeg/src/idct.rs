//! libjpeg's accurate integer inverse DCT (`jpeg_idct_islow` in `jidctint.c`), with the
//! 16-bit details of libjpeg-turbo's x86-64 SIMD version (`jsimd_idct_islow_avx2`), which is
//! what Pillow's and OpenCV's wheels run.
//!
//! On coefficients an 8-bit encoder can produce the C and SIMD versions agree. They differ on
//! extreme (corrupt or hand-made) ones: the SIMD code dequantises with a 16-bit product, adds
//! some pairs of inputs in 16 bits, saturates each pass's output to 16 bits and clamps the
//! result, where the C code works in 32 bits and wraps through its modulo-1024 `range_limit`
//! table. This file follows the SIMD code, so that even such files decode as Pillow and
//! OpenCV decode them. Arithmetic wraps instead of trapping, as the SIMD code does.

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

/// The low 16 bits as a signed number (`vpaddw`, `vpmullw`, `vpsllw`).
#[inline(always)]
fn wrap16(a: Lanes) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_shl(16) >> 16)
}

/// Signed saturation to 16 bits (`vpackssdw`).
#[inline(always)]
fn sat16(a: Lanes) -> Lanes {
    std::array::from_fn(|i| a[i].max(i16::MIN as i32).min(i16::MAX as i32))
}

/// Rounding right shift (`DESCALE`).
#[inline(always)]
fn descale(a: Lanes, n: i32) -> Lanes {
    std::array::from_fn(|i| a[i].wrapping_add(1 << (n - 1)) >> n)
}

/// One 1-D pass of `jpeg_idct_islow` on eight independent lanes (eight columns, or eight
/// rows after a transpose) of 16-bit inputs, so that the compiler can use SIMD. The sums the
/// AVX2 code forms in 16 bits (`in0 ± in4`, `z3`, `z4`) wrap as there; the rest is exact in
/// 32 bits either way.
#[inline(always)]
fn idct_1d<const WRAP16: bool>(s: [Lanes; 8]) -> [Lanes; 8] {
    let wrap = |a: Lanes| if WRAP16 { wrap16(a) } else { a };
    let z2 = s[2];
    let z3 = s[6];
    let z1 = mulc(add(z2, z3), FIX_0_541196100);
    let tmp2 = add(z1, mulc(z3, -FIX_1_847759065));
    let tmp3 = add(z1, mulc(z2, FIX_0_765366865));
    let tmp0 = shl(wrap(add(s[0], s[4])), CONST_BITS as u32);
    let tmp1 = shl(wrap(sub(s[0], s[4])), CONST_BITS as u32);
    let tmp10 = add(tmp0, tmp3);
    let tmp13 = sub(tmp0, tmp3);
    let tmp11 = add(tmp1, tmp2);
    let tmp12 = sub(tmp1, tmp2);

    let (t0, t1, t2, t3) = (s[7], s[5], s[3], s[1]);
    let z1 = add(t0, t3);
    let z2 = add(t1, t2);
    let z3 = wrap(add(t0, t2));
    let z4 = wrap(add(t1, t3));
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

/// Level shift and clamp of a pass-2 output (`vpacksswb` and adding 128; libjpeg's C code
/// wraps modulo 1024 through `range_limit` instead, which only differs beyond ±512).
#[inline(always)]
fn range_limit(x: i32) -> u8 {
    (x.wrapping_add(128)).clamp(0, 255) as u8
}

/// The dequantised value as libjpeg-turbo's SIMD IDCT computes it: a 16-bit product
/// (`vpmullw`); a valid file never needs more.
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
    // Pass 1 on columns (lane c of `ws[r]` is row r of column c), pass 2 on rows (after the
    // transpose lane r of `t[k]` is ws[r][k]), in plain 32-bit arithmetic: that is what the
    // SIMD code computes as long as none of its 16-bit steps overflows. No pass-1 weight
    // exceeds 11363/8192, so a column whose absolute values sum to at most 2900 gives pass-1
    // outputs within ±(2900 · 11363 / 2048 + 1) < 16384, and every 16-bit sum of two inputs
    // in either pass fits.
    let mut colsum = [0i32; 8];
    for r in &rows {
        for i in 0..8 {
            colsum[i] += r[i].abs();
        }
    }
    let px = if colsum.iter().all(|&s| s <= 2900) {
        let ws = idct_1d::<false>(rows).map(|v| descale(v, CONST_BITS - PASS1_BITS));
        idct_1d::<false>(transpose(ws)).map(|v| descale(v, CONST_BITS + PASS1_BITS + 3))
    } else {
        simd_extreme(coef, rows)
    };
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

/// Both passes with the AVX2 code's 16-bit steps, for blocks whose values are out of the
/// range where plain arithmetic gives the same result (corrupt or hand-made files).
#[cold]
fn simd_extreme(coef: &[i16; 64], rows: [Lanes; 8]) -> [Lanes; 8] {
    // When rows 1–7 are all zero the AVX2 code's pass 1 is a shortcut for the whole block:
    // the DC row shifted left in 16 bits.
    let ws = if coef[8..].iter().all(|&c| c == 0) {
        [wrap16(shl(rows[0], PASS1_BITS as u32)); 8]
    } else {
        idct_1d::<true>(rows).map(|v| sat16(descale(v, CONST_BITS - PASS1_BITS)))
    };
    idct_1d::<true>(transpose(ws)).map(|v| descale(v, CONST_BITS + PASS1_BITS + 3))
}

/// [`idct_islow`] of a block whose only nonzero coefficient is the DC one: every pass-1
/// output is `dc << 2` (in 16 bits) and every pixel `(ws + 16) >> 5`, exactly as the full
/// transform gives.
#[inline]
pub(crate) fn idct_dc_only(dc: i16, quant0: i32, out: &mut [u8], offset: usize, stride: usize) {
    let ws = (dequantize(dc, quant0) << PASS1_BITS) as i16 as i32;
    let v = range_limit((ws + 16) >> 5);
    for r in 0..8 {
        if let Some(dst) = out.get_mut(offset + r * stride..offset + r * stride + 8) {
            dst.fill(v);
        }
    }
}
