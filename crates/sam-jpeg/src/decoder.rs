//! Marker parsing, entropy decoding (sequential and progressive) and the output pipeline.

use crate::color::{self, ColorSpace, Plane};
use crate::huffman::{BitReader, HuffTable};
use crate::idct::{idct_dc_only, idct_islow};
use crate::{DecodedJpeg, JpegError, MAX_PIXELS, Result};

/// Zig-zag index → natural index, with 16 extra entries so that a corrupt run past the 63rd
/// coefficient lands on the last one, as libjpeg's `jpeg_natural_order` does.
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

fn corrupt(msg: &str) -> JpegError {
    JpegError::Corrupt(msg.into())
}

fn truncated(msg: &str) -> JpegError {
    JpegError::Truncated(msg.into())
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks that hold image samples (`width_in_blocks`, `height_in_blocks`).
    bw: usize,
    bh: usize,
    /// Samples that belong to the image (`downsampled_width`, `downsampled_height`).
    dw: usize,
    dh: usize,
    /// Blocks per row and rows of blocks in storage: whole MCUs, so that the dummy blocks of
    /// interleaved scans have somewhere to go.
    sbw: usize,
    sbh: usize,
    /// The quantisation table in natural order, latched when the component's first scan
    /// starts (libjpeg's `latch_quant_tables`).
    quant: Option<[i32; 64]>,
    scanned: bool,
}

struct Frame {
    width: usize,
    height: usize,
    progressive: bool,
    comps: Vec<Component>,
    max_h: usize,
    max_v: usize,
    mcus_x: usize,
    mcus_y: usize,
}

/// One scan's parameters.
struct Scan {
    /// (frame component index, DC table, AC table).
    comps: Vec<(usize, usize, usize)>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

#[derive(Default)]
struct State {
    frame: Option<Frame>,
    quant: [Option<[u16; 64]>; 4],
    dc_tables: [Option<HuffTable>; 4],
    ac_tables: [Option<HuffTable>; 4],
    restart_interval: usize,
    saw_jfif: bool,
    adobe_transform: Option<u8>,
    exif_orientation: Option<u16>,
    saw_exif: bool,
    /// Decoded samples per component (sequential) or, for progressive files, filled from
    /// `coefs` at the end.
    planes: Vec<Vec<u8>>,
    coefs: Vec<Vec<i16>>,
    scans: usize,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some((*b.get(at)? as usize) << 8 | *b.get(at + 1)? as usize)
}

/// Finds the next marker at or after `p` as libjpeg's `next_marker` does (skipping any
/// garbage and fill bytes); returns the marker code and the position after it.
fn next_marker(b: &[u8], mut p: usize) -> Result<(u8, usize)> {
    loop {
        while b.get(p).is_some_and(|&x| x != 0xFF) {
            p += 1;
        }
        while b.get(p) == Some(&0xFF) {
            p += 1;
        }
        match b.get(p) {
            None => return Err(truncated("the data ends before the end-of-image marker")),
            Some(0) => p += 1,
            Some(&m) => return Ok((m, p + 1)),
        }
    }
}

pub(crate) fn decode(b: &[u8]) -> Result<DecodedJpeg> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(JpegError::NotJpeg);
    }
    let mut st = State::default();
    let mut p = 2;
    loop {
        let (m, next) = next_marker(b, p)?;
        p = next;
        match m {
            0xD9 => break,
            0xD8 => return Err(corrupt("a second start-of-image marker")),
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let len = be16(b, p).ok_or_else(|| truncated("a marker segment is cut off"))?;
        if len < 2 {
            return Err(corrupt("a marker segment shorter than its length field"));
        }
        let seg = b
            .get(p + 2..p + len)
            .ok_or_else(|| truncated("a marker segment is cut off"))?;
        p += len;
        match m {
            0xC0..=0xC2 => st.read_sof(seg, m == 0xC2)?,
            0xC3 | 0xC5..=0xC7 | 0xCB | 0xCD..=0xCF => {
                return Err(JpegError::Unsupported(
                    "lossless or hierarchical JPEG".into(),
                ));
            }
            0xC9 | 0xCA => return Err(JpegError::Unsupported("arithmetic coding".into())),
            0xC4 => st.read_dht(seg)?,
            // Arithmetic-coding conditioning; harmless unless an arithmetic frame follows.
            0xCC => {}
            0xDB => st.read_dqt(seg)?,
            0xDD => {
                st.restart_interval = be16(seg, 0).ok_or_else(|| corrupt("a short DRI segment"))?;
            }
            0xDA => {
                let scan = st.read_sos(seg)?;
                p = st.decode_scan(b, p, &scan)?;
                st.scans += 1;
            }
            0xDC => return Err(JpegError::Unsupported("DNL marker".into())),
            0xE0 => {
                // libjpeg counts a JFIF marker only with its whole 14-byte header.
                if seg.len() >= 14 && seg.starts_with(b"JFIF\0") {
                    st.saw_jfif = true;
                }
            }
            0xE1 => {
                if !st.saw_exif && seg.starts_with(b"Exif\0\0") {
                    st.saw_exif = true;
                    st.exif_orientation = crate::exif::exif_orientation(seg);
                }
            }
            0xEE => {
                if seg.starts_with(b"Adobe") && seg.len() >= 12 {
                    st.adobe_transform = Some(seg[11]);
                }
            }
            0xE2..=0xED | 0xEF | 0xFE => {}
            _ => return Err(corrupt(&format!("unknown marker FF{m:02X}"))),
        }
    }
    st.finish()
}

impl State {
    fn read_sof(&mut self, s: &[u8], progressive: bool) -> Result<()> {
        if self.frame.is_some() {
            return Err(corrupt("more than one frame header"));
        }
        let short = || corrupt("a short frame header");
        let precision = *s.first().ok_or_else(short)?;
        if precision != 8 {
            return Err(JpegError::Unsupported(format!("{precision}-bit samples")));
        }
        let height = be16(s, 1).ok_or_else(short)?;
        let width = be16(s, 3).ok_or_else(short)?;
        let n = *s.get(5).ok_or_else(short)? as usize;
        if height == 0 {
            return Err(JpegError::Unsupported(
                "height 0 (defined by a DNL marker)".into(),
            ));
        }
        if width == 0 {
            return Err(JpegError::Size("width 0".into()));
        }
        if (width as u64) * (height as u64) > MAX_PIXELS {
            return Err(JpegError::Size(format!(
                "{width}×{height} is more than {MAX_PIXELS} pixels"
            )));
        }
        if !matches!(n, 1 | 3 | 4) {
            return Err(JpegError::Unsupported(format!("{n}-component image")));
        }
        if s.len() < 6 + 3 * n {
            return Err(short());
        }
        let mut comps = Vec::with_capacity(n);
        for i in 0..n {
            let c = &s[6 + 3 * i..9 + 3 * i];
            let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(corrupt("bad sampling factors"));
            }
            if c[2] > 3 {
                return Err(corrupt("bad quantisation table number"));
            }
            if comps.iter().any(|x: &Component| x.id == c[0]) {
                return Err(corrupt("duplicate component id"));
            }
            comps.push(Component {
                id: c[0],
                h,
                v,
                tq: c[2] as usize,
                bw: 0,
                bh: 0,
                dw: 0,
                dh: 0,
                sbw: 0,
                sbh: 0,
                quant: None,
                scanned: false,
            });
        }
        if n == 1 {
            // A single component is never interleaved: its sampling factors do not matter.
            comps[0].h = 1;
            comps[0].v = 1;
        }
        let max_h = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let max_v = comps.iter().map(|c| c.v).max().unwrap_or(1);
        let mcus_x = width.div_ceil(8 * max_h);
        let mcus_y = height.div_ceil(8 * max_v);
        for c in &mut comps {
            if max_h % c.h != 0 || max_v % c.v != 0 {
                return Err(JpegError::Unsupported(
                    "non-integral chroma subsampling ratio".into(),
                ));
            }
            c.dw = (width * c.h).div_ceil(max_h);
            c.dh = (height * c.v).div_ceil(max_v);
            c.bw = c.dw.div_ceil(8);
            c.bh = c.dh.div_ceil(8);
            c.sbw = mcus_x * c.h;
            c.sbh = mcus_y * c.v;
        }
        self.frame = Some(Frame {
            width,
            height,
            progressive,
            comps,
            max_h,
            max_v,
            mcus_x,
            mcus_y,
        });
        Ok(())
    }

    fn read_dht(&mut self, mut s: &[u8]) -> Result<()> {
        while !s.is_empty() {
            let tc = s[0] >> 4;
            let th = (s[0] & 15) as usize;
            if tc > 1 || th > 3 {
                return Err(corrupt("bad Huffman table class or number"));
            }
            let counts: [u8; 16] = s
                .get(1..17)
                .and_then(|c| c.try_into().ok())
                .ok_or_else(|| corrupt("a short DHT segment"))?;
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let symbols = s
                .get(17..17 + total)
                .ok_or_else(|| corrupt("a short DHT segment"))?;
            let table = HuffTable::new(&counts, symbols)?;
            if tc == 0 {
                self.dc_tables[th] = Some(table);
            } else {
                self.ac_tables[th] = Some(table);
            }
            s = &s[17 + total..];
        }
        Ok(())
    }

    fn read_dqt(&mut self, mut s: &[u8]) -> Result<()> {
        while !s.is_empty() {
            let pq = s[0] >> 4;
            let tq = (s[0] & 15) as usize;
            if pq > 1 || tq > 3 {
                return Err(corrupt("bad quantisation table precision or number"));
            }
            let size = if pq == 0 { 64 } else { 128 };
            let body = s
                .get(1..1 + size)
                .ok_or_else(|| corrupt("a short DQT segment"))?;
            let mut table = [0u16; 64];
            for k in 0..64 {
                table[NATURAL[k]] = if pq == 0 {
                    body[k] as u16
                } else {
                    (body[2 * k] as u16) << 8 | body[2 * k + 1] as u16
                };
            }
            self.quant[tq] = Some(table);
            s = &s[1 + size..];
        }
        Ok(())
    }

    fn read_sos(&mut self, s: &[u8]) -> Result<Scan> {
        let frame = self
            .frame
            .as_mut()
            .ok_or_else(|| corrupt("a scan before the frame header"))?;
        let short = || corrupt("a short scan header");
        let n = *s.first().ok_or_else(short)? as usize;
        if n == 0 || n > 4 || s.len() < 4 + 2 * n {
            return Err(corrupt("bad scan header"));
        }
        let mut comps = Vec::with_capacity(n);
        for i in 0..n {
            let id = s[1 + 2 * i];
            let tables = s[2 + 2 * i];
            let ci = frame
                .comps
                .iter()
                .position(|c| c.id == id)
                .ok_or_else(|| corrupt("a scan names an unknown component"))?;
            if comps.iter().any(|&(c, _, _)| c == ci) {
                return Err(corrupt("a scan names a component twice"));
            }
            let (td, ta) = ((tables >> 4) as usize, (tables & 15) as usize);
            if td > 3 || ta > 3 {
                return Err(corrupt("bad Huffman table number"));
            }
            comps.push((ci, td, ta));
        }
        let ss = s[1 + 2 * n] as usize;
        let se = s[2 + 2 * n] as usize;
        let ah = (s[3 + 2 * n] >> 4) as u32;
        let al = (s[3 + 2 * n] & 15) as u32;
        if n > 1 {
            let blocks: usize = comps
                .iter()
                .map(|&(ci, _, _)| frame.comps[ci].h * frame.comps[ci].v)
                .sum();
            if blocks > 10 {
                return Err(corrupt("more than 10 blocks per MCU"));
            }
        }
        if frame.progressive {
            // jdphuff.c's `start_pass_phuff_decoder` checks.
            let bad = if ss == 0 {
                se != 0
            } else {
                ss > se || se > 63 || n != 1
            } || (ah != 0 && al + 1 != ah)
                || al > 13;
            if bad {
                return Err(corrupt("invalid progressive scan parameters"));
            }
        }
        for &(ci, _, _) in &comps {
            let c = &mut frame.comps[ci];
            if c.quant.is_none() {
                let q = self.quant[c.tq]
                    .ok_or_else(|| corrupt("a component's quantisation table is missing"))?;
                // libjpeg-turbo's SIMD IDCT holds quantisation values as 16-bit words.
                c.quant = Some(q.map(|v| v as i16 as i32));
            }
            if !frame.progressive && c.scanned {
                return Err(corrupt("a component appears in two sequential scans"));
            }
            c.scanned = true;
        }
        Ok(Scan {
            comps,
            ss,
            se,
            ah,
            al,
        })
    }

    /// Decodes the scan whose entropy-coded data starts at `p`; returns where to look for
    /// the next marker.
    fn decode_scan(&mut self, b: &[u8], p: usize, scan: &Scan) -> Result<usize> {
        let Some(frame) = &self.frame else {
            return Err(corrupt("a scan before the frame header"));
        };
        if self.planes.len() != frame.comps.len() {
            self.planes = vec![Vec::new(); frame.comps.len()];
            self.coefs = vec![Vec::new(); frame.comps.len()];
        }
        for &(ci, _, _) in &scan.comps {
            if !self.planes[ci].is_empty() {
                continue;
            }
            let c = &frame.comps[ci];
            // A component is allocated at its first scan, which must code its DC coefficients
            // (libjpeg only warns about a progression that starts otherwise). That costs at
            // least a bit per block, so a small file cannot claim a huge image and make the
            // decoder allocate it.
            if frame.progressive && (scan.ss != 0 || scan.ah != 0) {
                return Err(corrupt(
                    "a component's first scan does not code its DC coefficients",
                ));
            }
            if b.len().saturating_sub(p) * 8 < c.bw * c.bh {
                return Err(truncated("the scan is too short for the image size"));
            }
            self.planes[ci] = vec![0; c.sbw * 8 * c.sbh * 8];
            if frame.progressive {
                self.coefs[ci] = vec![0; c.sbw * c.sbh * 64];
            }
        }
        // Check the tables this scan needs.
        // Sequential scans always code DC (their Ss/Se/Ah/Al are ignored, as libjpeg does).
        let dc_needed = !frame.progressive || (scan.ss == 0 && scan.ah == 0);
        let ac_needed = !frame.progressive || scan.ss > 0;
        for &(_, td, ta) in &scan.comps {
            if dc_needed {
                let t = self.dc_tables[td].as_ref().ok_or_else(|| {
                    JpegError::Unsupported(
                        "a scan without its DC Huffman table (Motion-JPEG default tables)".into(),
                    )
                })?;
                if t.max_symbol > 15 {
                    return Err(corrupt("bad Huffman table"));
                }
            }
            if ac_needed && self.ac_tables[ta].is_none() {
                return Err(JpegError::Unsupported(
                    "a scan without its AC Huffman table (Motion-JPEG default tables)".into(),
                ));
            }
        }

        let ri = self.restart_interval;
        let single = scan.comps.len() == 1;
        let (units_x, units_y) = if single {
            let c = &frame.comps[scan.comps[0].0];
            (c.bw, c.bh)
        } else {
            (frame.mcus_x, frame.mcus_y)
        };
        let progressive = frame.progressive;
        // Everything one scan component needs per block, looked up once.
        struct Unit<'t> {
            ci: usize,
            nh: usize,
            nv: usize,
            dc: Option<&'t HuffTable>,
            ac: Option<&'t HuffTable>,
            quant: [i32; 64],
            sbw: usize,
        }
        let units: Vec<Unit> = scan
            .comps
            .iter()
            .map(|&(ci, td, ta)| {
                let c = &frame.comps[ci];
                let (nh, nv) = if single { (1, 1) } else { (c.h, c.v) };
                Unit {
                    ci,
                    nh,
                    nv,
                    dc: self.dc_tables[td].as_ref(),
                    ac: self.ac_tables[ta].as_ref(),
                    quant: c.quant.unwrap_or([0; 64]),
                    sbw: c.sbw,
                }
            })
            .collect();
        let planes = &mut self.planes;
        let coefs = &mut self.coefs;
        let missing = || corrupt("a scan without its Huffman table");

        let mut r = BitReader::new(b, p);
        let mut dc_pred = [0i32; 4];
        let mut eobrun = 0u32;
        let mut next_rst = 0u8;
        let mut blk = [0i16; 64];
        for mcu in 0..units_x * units_y {
            if ri > 0 && mcu > 0 && mcu % ri == 0 {
                if r.overrun() {
                    return Err(overrun_error(&r));
                }
                let (m, after) = next_marker(b, r.position())?;
                if m != 0xD0 + next_rst {
                    return Err(corrupt("missing restart marker"));
                }
                next_rst = (next_rst + 1) & 7;
                r.reset(after);
                dc_pred = [0; 4];
                eobrun = 0;
            }
            let (mx, my) = (mcu % units_x, mcu / units_x);
            for (si, u) in units.iter().enumerate() {
                for by in 0..u.nv {
                    for bx in 0..u.nh {
                        let (x, y) = (mx * u.nh + bx, my * u.nv + by);
                        if !progressive {
                            let (Some(dc), Some(ac)) = (u.dc, u.ac) else {
                                return Err(missing());
                            };
                            let has_ac = decode_block(&mut r, dc, ac, &mut blk, &mut dc_pred[si])?;
                            let stride = u.sbw * 8;
                            let at = y * 8 * stride + x * 8;
                            let plane = &mut planes[u.ci];
                            if has_ac {
                                idct_islow(&blk, &u.quant, plane, at, stride);
                                blk = [0; 64];
                            } else {
                                idct_dc_only(blk[0], u.quant[0], plane, at, stride);
                            }
                            continue;
                        }
                        let start = (y * u.sbw + x) * 64;
                        let Some(coef) = coefs[u.ci].get_mut(start..start + 64) else {
                            return Err(corrupt("block outside the image"));
                        };
                        let coef: &mut [i16; 64] = coef
                            .try_into()
                            .map_err(|_| corrupt("block outside the image"))?;
                        if scan.ss == 0 {
                            if scan.ah == 0 {
                                let s = r.decode(u.dc.ok_or_else(missing)?)? as u32;
                                dc_pred[si] = dc_pred[si].wrapping_add(r.receive_extend(s));
                                coef[0] = dc_pred[si].wrapping_shl(scan.al) as i16;
                            } else if r.bit() {
                                coef[0] |= 1 << scan.al;
                            }
                        } else if scan.ah == 0 {
                            ac_first(&mut r, u.ac.ok_or_else(missing)?, coef, scan, &mut eobrun)?;
                        } else {
                            ac_refine(&mut r, u.ac.ok_or_else(missing)?, coef, scan, &mut eobrun)?;
                        }
                    }
                }
            }
            if r.overrun() {
                return Err(overrun_error(&r));
            }
        }
        Ok(r.position())
    }

    fn finish(mut self) -> Result<DecodedJpeg> {
        let Some(frame) = self.frame.take() else {
            return Err(corrupt("no frame header before the end of the image"));
        };
        if self.scans == 0 {
            return Err(truncated("no scan before the end of the image"));
        }
        if self.planes.len() != frame.comps.len() || self.planes.iter().any(|p| p.is_empty()) {
            return Err(truncated("a component was never coded"));
        }
        if frame.progressive {
            for (ci, c) in frame.comps.iter().enumerate() {
                // Latched by the component's first scan, which every component had (above).
                let quant = c.quant.unwrap_or([0; 64]);
                let stride = c.sbw * 8;
                for by in 0..c.bh {
                    for bx in 0..c.bw {
                        let start = (by * c.sbw + bx) * 64;
                        let Some(coef) = self.coefs[ci].get(start..start + 64) else {
                            continue;
                        };
                        let coef: &[i16; 64] = coef.try_into().map_err(|_| corrupt("block"))?;
                        idct_islow(
                            coef,
                            &quant,
                            &mut self.planes[ci],
                            by * 8 * stride + bx * 8,
                            stride,
                        );
                    }
                }
            }
        }
        // `default_decompress_parms` in jdapimin.c.
        let space = if frame.comps.len() == 4 {
            // Four components are CMYK unless an Adobe marker says otherwise (transform 2, and
            // any unknown one, is YCCK); a JFIF marker does not count.
            match self.adobe_transform {
                None | Some(0) => ColorSpace::Cmyk,
                Some(_) => ColorSpace::Ycck,
            }
        } else if frame.comps.len() == 1 || self.saw_jfif {
            ColorSpace::YCbCr
        } else if let Some(t) = self.adobe_transform {
            if t == 0 {
                ColorSpace::Rgb
            } else {
                ColorSpace::YCbCr
            }
        } else {
            let ids: Vec<u8> = frame.comps.iter().map(|c| c.id).collect();
            if ids == b"RGB" {
                ColorSpace::Rgb
            } else {
                ColorSpace::YCbCr
            }
        };
        let planes: Vec<Plane> = frame
            .comps
            .iter()
            .zip(&self.planes)
            .map(|(c, data)| Plane {
                data,
                stride: c.sbw * 8,
                dw: c.dw,
                dh: c.dh,
                hf: frame.max_h / c.h,
                vf: frame.max_v / c.v,
            })
            .collect();
        let pixels = color::convert(frame.width, frame.height, &planes, space);
        Ok(DecodedJpeg {
            width: frame.width as u32,
            height: frame.height as u32,
            components: frame.comps.len() as u8,
            pixels,
            exif_orientation: self.exif_orientation,
        })
    }
}

fn overrun_error(r: &BitReader) -> JpegError {
    if r.at_eof() {
        truncated("the entropy-coded data ends before the last block")
    } else {
        corrupt("the entropy-coded data ends at a marker before the last block")
    }
}

/// One block of a sequential scan (`decode_mcu` in `jdhuff.c`), coefficients in natural
/// order.
#[inline(always)]
fn decode_block(
    r: &mut BitReader,
    dc: &HuffTable,
    ac: &HuffTable,
    blk: &mut [i16; 64],
    pred: &mut i32,
) -> Result<bool> {
    let s = r.decode(dc)? as u32;
    *pred = pred.wrapping_add(r.receive_extend(s));
    blk[0] = *pred as i16;
    let mut k = 1usize;
    while k < 64 {
        if let Some((run, value)) = r.decode_ac_fast(ac) {
            k += run;
            blk[NATURAL[k]] = value as i16;
            k += 1;
            continue;
        }
        let rs = r.decode(ac)?;
        let (run, s) = ((rs >> 4) as usize, (rs & 15) as u32);
        if s != 0 {
            k += run;
            blk[NATURAL[k]] = r.receive_extend(s) as i16;
            k += 1;
        } else if run == 15 {
            k += 16;
        } else {
            break;
        }
    }
    Ok(k > 1)
}

/// First AC scan of a spectral band (`decode_mcu_AC_first` in `jdphuff.c`).
fn ac_first(
    r: &mut BitReader,
    t: &HuffTable,
    coef: &mut [i16; 64],
    scan: &Scan,
    eobrun: &mut u32,
) -> Result<()> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss;
    while k <= scan.se {
        let rs = r.decode(t)?;
        let (run, s) = ((rs >> 4) as usize, (rs & 15) as u32);
        if s != 0 {
            k += run;
            let v = r.receive_extend(s);
            coef[NATURAL[k]] = v.wrapping_shl(scan.al) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            *eobrun = (1 << run) + r.bits(run as u32) - 1;
            break;
        }
        k += 1;
    }
    Ok(())
}

/// AC successive-approximation refinement (`decode_mcu_AC_refine` in `jdphuff.c`).
fn ac_refine(
    r: &mut BitReader,
    t: &HuffTable,
    coef: &mut [i16; 64],
    scan: &Scan,
    eobrun: &mut u32,
) -> Result<()> {
    let p1: i16 = 1i16.wrapping_shl(scan.al);
    let m1: i16 = (-1i16).wrapping_shl(scan.al);
    let refine = |c: &mut i16, r: &mut BitReader| {
        if r.bit() && (*c & p1) == 0 {
            *c = if *c >= 0 {
                c.wrapping_add(p1)
            } else {
                c.wrapping_add(m1)
            };
        }
    };
    let mut k = scan.ss;
    if *eobrun == 0 {
        while k <= scan.se {
            let rs = r.decode(t)?;
            let mut run = (rs >> 4) as i32;
            let s = (rs & 15) as u32;
            let mut value = 0i16;
            if s != 0 {
                // libjpeg warns when s != 1 and goes on the same way.
                value = if r.bit() { p1 } else { m1 };
            } else if run != 15 {
                *eobrun = (1 << run) + r.bits(run as u32);
                break;
            }
            loop {
                let c = &mut coef[NATURAL[k]];
                if *c != 0 {
                    refine(c, r);
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
                if k > scan.se {
                    break;
                }
            }
            if value != 0 {
                coef[NATURAL[k]] = value;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= scan.se {
            let c = &mut coef[NATURAL[k]];
            if *c != 0 {
                refine(c, r);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}
