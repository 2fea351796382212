//! Chroma upsampling (`jdsample.c`, with libjpeg's default `do_fancy_upsampling`) and
//! YCbCr→RGB conversion (`jdcolor.c`), row by row.

/// One decoded component: samples at its own resolution.
pub(crate) struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    /// Samples that belong to the image (`downsampled_width/height` in libjpeg); the rest of
    /// the plane is block padding, which libjpeg's upsamplers never read.
    pub dw: usize,
    pub dh: usize,
    /// Upsampling factors (max sampling factor / own), integral.
    pub hf: usize,
    pub vf: usize,
}

/// How the file's components map to the output: RGB for three, CMYK for four.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColorSpace {
    YCbCr,
    Rgb,
    /// Four components stored as they are output (libjpeg's `null_convert`).
    Cmyk,
    /// Four components, the first three YCbCr of inverted CMY (`ycck_cmyk_convert`).
    Ycck,
}

const SCALEBITS: i32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);

// `jdcolor.c`'s FIX(x) = (x * 65536 + 0.5) as an integer, for `build_ycc_rgb_table`.
const FIX_1_40200: i32 = 91881;
const FIX_1_77200: i32 = 116130;
const FIX_0_71414: i32 = 46802;
const FIX_0_34414: i32 = 22554;

impl Plane<'_> {
    #[inline]
    fn row(&self, r: usize) -> &[u8] {
        // `r < dh` and `dw <= stride` hold by construction; `get` keeps a broken invariant
        // from panicking.
        self.data
            .get(r * self.stride..r * self.stride + self.dw)
            .unwrap_or(&[])
    }

    /// Output row `y` of this component at full resolution, in `tmp` unless the component
    /// is full size. At least `width` samples.
    fn upsampled<'s>(&'s self, y: usize, width: usize, tmp: &'s mut Vec<u8>) -> &'s [u8] {
        let dw = self.dw;
        match (self.hf, self.vf) {
            (1, 1) => self.row(y),
            (2, 1) if dw > 2 => {
                h2v1_fancy(self.row(y), tmp);
                tmp
            }
            (1, 2) => {
                let (near, far, bias) = self.context_rows(y);
                tmp.clear();
                tmp.extend(
                    near.iter()
                        .zip(far)
                        .map(|(&n, &f)| ((3 * n as u16 + f as u16 + bias) >> 2) as u8),
                );
                tmp
            }
            (2, 2) if dw > 2 => {
                let (near, far, _) = self.context_rows(y);
                h2v2_fancy(near, far, tmp);
                tmp
            }
            (hf, vf) => {
                // `int_upsample` (and the box `h2v1_upsample`/`h2v2_upsample`): replicate.
                let row = self.row(y / vf);
                tmp.clear();
                tmp.extend((0..width).map(|x| row.get(x / hf).copied().unwrap_or(0)));
                tmp
            }
        }
    }

    /// For vertical 2× fancy upsampling: the nearer input row, the next nearer one (above for
    /// even output rows, below for odd ones, replicated at the image's edges as
    /// `jdmainct.c`'s context pointers do) and the `h1v2` rounding bias.
    fn context_rows(&self, y: usize) -> (&[u8], &[u8], u16) {
        let r = y / 2;
        if y.is_multiple_of(2) {
            (self.row(r), self.row(r.saturating_sub(1)), 1)
        } else {
            (
                self.row(r),
                self.row((r + 1).min(self.dh.saturating_sub(1))),
                2,
            )
        }
    }
}

/// `h2v1_fancy_upsample`: each output sample is ¾ of the nearer input plus ¼ of the further
/// one, rounding alternately down and up; the edge samples are copied.
fn h2v1_fancy(row: &[u8], out: &mut Vec<u8>) {
    let n = row.len();
    out.resize(2 * n, 0);
    if n < 2 {
        out.iter_mut()
            .for_each(|o| *o = row.first().copied().unwrap_or(0));
        return;
    }
    out[0] = row[0];
    out[1] = ((row[0] as u16 * 3 + row[1] as u16 + 2) >> 2) as u8;
    for (o, w) in out[2..2 * n - 2].chunks_exact_mut(2).zip(row.windows(3)) {
        let v = w[1] as u16 * 3;
        o[0] = ((v + w[0] as u16 + 1) >> 2) as u8;
        o[1] = ((v + w[2] as u16 + 2) >> 2) as u8;
    }
    out[2 * n - 2] = ((row[n - 1] as u16 * 3 + row[n - 2] as u16 + 1) >> 2) as u8;
    out[2 * n - 1] = row[n - 1];
}

/// `h2v2_fancy_upsample`: the triangle filter in both directions (weights 9/16, 3/16, 3/16,
/// 1/16), biases 8 and 7 alternating.
fn h2v2_fancy(near: &[u8], far: &[u8], out: &mut Vec<u8>) {
    let n = near.len().min(far.len());
    out.resize(2 * n, 0);
    if n < 2 {
        return;
    }
    let cs: Vec<i32> = near
        .iter()
        .zip(far)
        .map(|(&a, &b)| a as i32 * 3 + b as i32)
        .collect();
    out[0] = ((cs[0] * 4 + 8) >> 4) as u8;
    out[1] = ((cs[0] * 3 + cs[1] + 7) >> 4) as u8;
    for (o, w) in out[2..2 * n - 2].chunks_exact_mut(2).zip(cs.windows(3)) {
        o[0] = ((w[1] * 3 + w[0] + 8) >> 4) as u8;
        o[1] = ((w[1] * 3 + w[2] + 7) >> 4) as u8;
    }
    out[2 * n - 2] = ((cs[n - 1] * 3 + cs[n - 2] + 8) >> 4) as u8;
    out[2 * n - 1] = ((cs[n - 1] * 4 + 7) >> 4) as u8;
}

/// `jdcolor.c`'s YCbCr→RGB with the tables of `build_ycc_rgb_table`, computed inline (same
/// integers), before the range limit.
#[inline]
fn ycc_to_rgb(y: u8, cb: u8, cr: u8) -> [i32; 3] {
    let y = y as i32;
    let (cb, cr) = (cb as i32 - 128, cr as i32 - 128);
    [
        y + ((FIX_1_40200 * cr + ONE_HALF) >> SCALEBITS),
        y + ((-FIX_0_34414 * cb + ONE_HALF - FIX_0_71414 * cr) >> SCALEBITS),
        y + ((FIX_1_77200 * cb + ONE_HALF) >> SCALEBITS),
    ]
}

/// Interleaved CMYK of four planes, as libjpeg outputs `JCS_CMYK`.
fn convert_cmyk(width: usize, height: usize, planes: &[Plane; 4], space: ColorSpace) -> Vec<u8> {
    let mut out = vec![0u8; width * height * 4];
    let mut tmp: [Vec<u8>; 4] = Default::default();
    for (y, dst) in out.chunks_exact_mut(width * 4).enumerate() {
        let [t0, t1, t2, t3] = &mut tmp;
        let rows = [
            planes[0].upsampled(y, width, t0).get(..width),
            planes[1].upsampled(y, width, t1).get(..width),
            planes[2].upsampled(y, width, t2).get(..width),
            planes[3].upsampled(y, width, t3).get(..width),
        ];
        let [Some(c0), Some(c1), Some(c2), Some(c3)] = rows else {
            continue;
        };
        for (x, px) in dst.chunks_exact_mut(4).enumerate() {
            let (a, b, c, k) = (c0[x], c1[x], c2[x], c3[x]);
            let cmy = match space {
                // `ycck_cmyk_convert`: MAXJSAMPLE − (the RGB sum), range-limited.
                ColorSpace::Ycck => ycc_to_rgb(a, b, c).map(|v| (255 - v).clamp(0, 255) as u8),
                _ => [a, b, c],
            };
            px.copy_from_slice(&[cmy[0], cmy[1], cmy[2], k]);
        }
    }
    out
}

/// Interleaved RGB (three planes), CMYK (four) or gray (one plane) output of `width × height`
/// pixels.
pub(crate) fn convert(width: usize, height: usize, planes: &[Plane], space: ColorSpace) -> Vec<u8> {
    if let Ok(four) = <&[Plane; 4]>::try_from(planes) {
        return convert_cmyk(width, height, four, space);
    }
    if let [p] = planes {
        let mut out = Vec::with_capacity(width * height);
        for y in 0..height {
            out.extend_from_slice(p.row(y).get(..width).unwrap_or(&[]));
        }
        out.resize(width * height, 0);
        return out;
    }
    let [p0, p1, p2] = planes else {
        return Vec::new();
    };
    let mut out = vec![0u8; width * height * 3];
    let (mut t0, mut t1, mut t2) = (Vec::new(), Vec::new(), Vec::new());
    for (y, dst) in out.chunks_exact_mut(width * 3).enumerate() {
        let c0 = p0.upsampled(y, width, &mut t0);
        let c1 = p1.upsampled(y, width, &mut t1);
        let c2 = p2.upsampled(y, width, &mut t2);
        let (Some(c0), Some(c1), Some(c2)) = (c0.get(..width), c1.get(..width), c2.get(..width))
        else {
            continue;
        };
        match space {
            ColorSpace::YCbCr | ColorSpace::Ycck => {
                for (((px, &yy), &cb), &cr) in dst.chunks_exact_mut(3).zip(c0).zip(c1).zip(c2) {
                    let rgb = ycc_to_rgb(yy, cb, cr).map(|v| v.clamp(0, 255) as u8);
                    px.copy_from_slice(&rgb);
                }
            }
            ColorSpace::Rgb | ColorSpace::Cmyk => {
                for (((px, &r), &g), &b) in dst.chunks_exact_mut(3).zip(c0).zip(c1).zip(c2) {
                    px.copy_from_slice(&[r, g, b]);
                }
            }
        }
    }
    out
}
