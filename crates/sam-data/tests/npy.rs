//! `.npy` round trips and corrupt files.

use sam_data::{DataError, read_npy_f32, write_npy_f32};

#[test]
fn npy_round_trips_and_matches_numpy_header_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    write_npy_f32(&path, &[2, 3, 4], &data).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "header is padded to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }"));
    assert_eq!(read_npy_f32(&path).unwrap(), (vec![2, 3, 4], data));

    let one = dir.path().join("one.npy");
    write_npy_f32(&one, &[3], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(read_npy_f32(&one).unwrap().0, vec![3]);
}

#[test]
fn bad_npy_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("empty.npy", b""),
        ("magic.npy", b"PK\x03\x04 not numpy at all"),
        ("header.npy", b"\x93NUMPY\x01\x00\xff\x7f{'descr'"),
        ("dtype.npy", b"\x93NUMPY\x01\x00\x3a\x00{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n\x01\x00\x00\x00\x00\x00\x00\x00"),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = read_npy_f32(&path).unwrap_err();
        assert!(matches!(e, DataError::ArrayFile { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    // Data shorter than the shape says.
    let path = dir.path().join("short.npy");
    write_npy_f32(&path, &[4], &[1.0; 4]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert!(
        read_npy_f32(&path)
            .unwrap_err()
            .to_string()
            .contains("data bytes")
    );
    let e = write_npy_f32(dir.path().join("x.npy"), &[2, 2], &[0.0; 3])
        .expect_err("an error")
        .to_string();
    assert!(e.contains("3 values for a [2, 2]"), "{e}");
}
