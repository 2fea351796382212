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

#[inline(always)]
fn mul(a: i32, b: i32) -> i32 {
    a.wrapping_mul(b)
}

/// The even and odd halves of one 1-D pass; returns the 8 outputs before descaling.
#[inline(always)]
fn idct_1d(s: [i32; 8]) -> [i32; 8] {
    let z2 = s[2];
    let z3 = s[6];
    let z1 = mul(z2.wrapping_add(z3), FIX_0_541196100);
    let tmp2 = z1.wrapping_add(mul(z3, -FIX_1_847759065));
    let tmp3 = z1.wrapping_add(mul(z2, FIX_0_765366865));
    let tmp0 = s[0].wrapping_add(s[4]).wrapping_shl(CONST_BITS as u32);
    let tmp1 = s[0].wrapping_sub(s[4]).wrapping_shl(CONST_BITS as u32);
    let tmp10 = tmp0.wrapping_add(tmp3);
    let tmp13 = tmp0.wrapping_sub(tmp3);
    let tmp11 = tmp1.wrapping_add(tmp2);
    let tmp12 = tmp1.wrapping_sub(tmp2);

    let t0 = s[7];
    let t1 = s[5];
    let t2 = s[3];
    let t3 = s[1];
    let z1 = t0.wrapping_add(t3);
    let z2 = t1.wrapping_add(t2);
    let z3 = t0.wrapping_add(t2);
    let z4 = t1.wrapping_add(t3);
    let z5 = mul(z3.wrapping_add(z4), FIX_1_175875602);
    let t0 = mul(t0, FIX_0_298631336);
    let t1 = mul(t1, FIX_2_053119869);
    let t2 = mul(t2, FIX_3_072711026);
    let t3 = mul(t3, FIX_1_501321110);
    let z1 = mul(z1, -FIX_0_899976223);
    let z2 = mul(z2, -FIX_2_562915447);
    let z3 = mul(z3, -FIX_1_961570560).wrapping_add(z5);
    let z4 = mul(z4, -FIX_0_390180644).wrapping_add(z5);
    let t0 = t0.wrapping_add(z1).wrapping_add(z3);
    let t1 = t1.wrapping_add(z2).wrapping_add(z4);
    let t2 = t2.wrapping_add(z2).wrapping_add(z3);
    let t3 = t3.wrapping_add(z1).wrapping_add(z4);

    [
        tmp10.wrapping_add(t3),
        tmp11.wrapping_add(t2),
        tmp12.wrapping_add(t1),
        tmp13.wrapping_add(t0),
        tmp13.wrapping_sub(t0),
        tmp12.wrapping_sub(t1),
        tmp11.wrapping_sub(t2),
        tmp10.wrapping_sub(t3),
    ]
}

/// Rounding right shift (`DESCALE`).
#[inline(always)]
fn descale(x: i32, n: i32) -> i32 {
    x.wrapping_add(1 << (n - 1)) >> n
}

/// Level shift and clamp of a pass-2 output. libjpeg's C code looks the value up modulo 1024
/// in `range_limit`, which wraps values beyond ±512; its x86 and Arm SIMD code (what Pillow's
/// and OpenCV's wheels run) saturates instead. The two agree on everything an 8-bit encoder
/// can produce; this follows the SIMD code.
#[inline(always)]
fn range_limit(x: i32) -> u8 {
    (x.wrapping_add(128)).clamp(0, 255) as u8
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
    let mut ws = [0i32; 64];
    for col in 0..8 {
        // libjpeg's SIMD dequantises in 16 bits (`pmullw`); a valid file never needs more.
        let dq = |row: usize| {
            (coef[row * 8 + col] as i32).wrapping_mul(quant[row * 8 + col]) as i16 as i32
        };
        if (1..8).all(|row| coef[row * 8 + col] == 0) {
            let dc = dq(0).wrapping_shl(PASS1_BITS as u32);
            for row in 0..8 {
                ws[row * 8 + col] = dc;
            }
            continue;
        }
        let r = idct_1d([dq(0), dq(1), dq(2), dq(3), dq(4), dq(5), dq(6), dq(7)]);
        for row in 0..8 {
            ws[row * 8 + col] = descale(r[row], CONST_BITS - PASS1_BITS);
        }
    }
    for row in 0..8 {
        let Some(dst) = out.get_mut(offset + row * stride..offset + row * stride + 8) else {
            return;
        };
        let w: [i32; 8] = ws[row * 8..row * 8 + 8].try_into().unwrap_or([0; 8]);
        let r = idct_1d(w);
        for (d, v) in dst.iter_mut().zip(r) {
            *d = range_limit(descale(v, CONST_BITS + PASS1_BITS + 3));
        }
    }
}
