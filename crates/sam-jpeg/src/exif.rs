//! The EXIF orientation tag from an APP1 segment.

/// The orientation (tag 0x0112 in IFD0, 1–8) from the body of an APP1 segment starting with
/// `Exif\0\0`; `None` if the segment is not Exif, is malformed or carries no valid value.
pub fn exif_orientation(app1: &[u8]) -> Option<u16> {
    let tiff = app1.strip_prefix(b"Exif\0\0")?;
    let big_endian = match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => false,
        [b'M', b'M', 0, 42] => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = u16_at(ifd)? as usize;
    for i in 0..count {
        let entry = ifd.checked_add(2)?.checked_add(i.checked_mul(12)?)?;
        if u16_at(entry)? != 0x0112 {
            continue;
        }
        // SHORT (type 3), count 1: the value sits in the first two bytes of the value field.
        let (ty, n) = (u16_at(entry + 2)?, u32_at(entry + 4)?);
        if ty != 3 || n != 1 {
            return None;
        }
        let v = u16_at(entry + 8)?;
        return (1..=8).contains(&v).then_some(v);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app1(big_endian: bool, orientation: u16) -> Vec<u8> {
        let mut t = b"Exif\0\0".to_vec();
        let w16 = |t: &mut Vec<u8>, v: u16| {
            t.extend(if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let w32 = |t: &mut Vec<u8>, v: u32| {
            t.extend(if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        t.extend(if big_endian { *b"MM\0*" } else { *b"II*\0" });
        w32(&mut t, 8);
        w16(&mut t, 2);
        // An unrelated tag first (ImageWidth), then the orientation.
        w16(&mut t, 0x0100);
        w16(&mut t, 3);
        w32(&mut t, 1);
        w16(&mut t, 640);
        w16(&mut t, 0);
        w16(&mut t, 0x0112);
        w16(&mut t, 3);
        w32(&mut t, 1);
        w16(&mut t, orientation);
        w16(&mut t, 0);
        w32(&mut t, 0);
        t
    }

    #[test]
    fn both_byte_orders_and_bad_values() {
        for o in 1..=8 {
            assert_eq!(exif_orientation(&app1(false, o)), Some(o));
            assert_eq!(exif_orientation(&app1(true, o)), Some(o));
        }
        assert_eq!(exif_orientation(&app1(true, 0)), None);
        assert_eq!(exif_orientation(&app1(false, 9)), None);
        let full = app1(false, 6);
        for cut in 0..full.len() - 6 {
            assert!(exif_orientation(&full[..cut]).is_none(), "cut at {cut}");
        }
        assert_eq!(exif_orientation(b"http://ns.adobe.com/xap/1.0/\0"), None);
    }
}
