//! Deriving independent random streams from one seed, so that results do not depend on the
//! order in which threads or loops consume randomness (and resumed runs repeat exactly).

/// splitmix64 of `a` combined with `b`: a well-mixed seed for the stream `(a, b)`.
pub fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
