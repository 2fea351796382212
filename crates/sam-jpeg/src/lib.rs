//! A baseline and progressive JPEG decoder whose output is bit-identical to libjpeg-turbo with
//! its default settings (what Pillow's `Image.open(f).convert("RGB")` and OpenCV's
//! `cv2.imread` return): the accurate integer IDCT (`jpeg_idct_islow`, down to the 16-bit
//! steps of libjpeg-turbo's x86-64 SIMD version on extreme coefficients), "fancy" (triangle
//! filter) chroma upsampling as `jdsample.c` selects it, and `jdcolor.c`'s fixed-point
//! YCbCr→RGB tables.
//!
//! Other Rust decoders round differently (a faster IDCT, other upsampling), which moves pixels
//! by up to tens of levels; SAM's outputs move with them. See `docs/numerics.md`.
//!
//! CMYK and YCCK files (four components) decode to libjpeg's CMYK output, which
//! [`DecodedJpeg::to_rgb`] converts as OpenCV does.
//!
//! Not supported, each a [`JpegError::Unsupported`]: arithmetic coding, 12- and 16-bit
//! samples, lossless and hierarchical JPEG, 2-component images, DNL markers, and scans that
//! rely on libjpeg-turbo's built-in Motion-JPEG Huffman tables.
//! Corrupt or truncated data is an error where libjpeg-turbo would warn and fill in grey.
//!
//! A progressive file is decoded after all its scans are read, as libjpeg does outside
//! buffered-image mode; libjpeg's block smoothing, which applies only to coefficients that no
//! scan refined to full precision (an incomplete progression), is not implemented.

#![warn(missing_docs)]

mod color;
mod decoder;
mod exif;
mod huffman;
mod idct;

pub use exif::exif_orientation;

/// Why a file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// The data does not start with the JPEG start-of-image marker.
    #[error("not a JPEG file (no start-of-image marker)")]
    NotJpeg,
    /// The data ends before the end-of-image marker.
    #[error("truncated JPEG: {0}")]
    Truncated(String),
    /// A marker segment or the entropy-coded data is malformed.
    #[error("corrupt JPEG: {0}")]
    Corrupt(String),
    /// A valid JPEG that uses a feature this decoder does not implement.
    #[error("unsupported JPEG: {0}")]
    Unsupported(String),
    /// The image is empty or too large to decode.
    #[error("bad JPEG size: {0}")]
    Size(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, JpegError>;

/// Largest number of pixels decoded (2²⁸, about 16384 × 16384), so that a small file cannot
/// make the decoder allocate gigabytes.
pub const MAX_PIXELS: u64 = 1 << 28;

/// A decoded image, in the file's own orientation (the EXIF orientation is reported, not
/// applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedJpeg {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 3 for colour (`pixels` is RGB interleaved), 1 for grayscale, 4 for CMYK and YCCK files
    /// (`pixels` is CMYK interleaved as libjpeg outputs it: Adobe files store inverted ink).
    pub components: u8,
    /// Row-major samples, `width * height * components` bytes.
    pub pixels: Vec<u8>,
    /// The EXIF orientation tag (1–8) if the file has an APP1 Exif segment carrying a valid
    /// one.
    pub exif_orientation: Option<u16>,
}

impl DecodedJpeg {
    /// The pixels as interleaved RGB: grayscale replicated to three channels, CMYK converted
    /// as `cv2.imread` does (`icvCvt_CMYK2BGR_8u_C4C3R`; Pillow's `convert("RGB")` rounds
    /// differently).
    pub fn to_rgb(&self) -> Vec<u8> {
        match self.components {
            1 => self.pixels.iter().flat_map(|&g| [g, g, g]).collect(),
            4 => self
                .pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = p[3] as i32;
                    // The stored (inverted) ink times the stored black, over 256.
                    let ink = |v: u8| (k - (((255 - v as i32) * k) >> 8)) as u8;
                    [ink(p[0]), ink(p[1]), ink(p[2])]
                })
                .collect(),
            _ => self.pixels.clone(),
        }
    }

    /// Converts into interleaved RGB without copying colour images.
    pub fn into_rgb(self) -> Vec<u8> {
        match self.components {
            1 | 4 => self.to_rgb(),
            _ => self.pixels,
        }
    }
}

/// Decodes a complete JPEG file to RGB (colour) or gray samples exactly as libjpeg-turbo does
/// by default.
///
/// # Errors
/// [`JpegError`] for anything but a complete, supported JPEG; never panics.
pub fn decode(bytes: &[u8]) -> Result<DecodedJpeg> {
    decoder::decode(bytes)
}
