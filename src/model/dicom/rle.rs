//! Checks RLE Lossless fragments before dicom-rs decodes them: its decoder (0.10.1) slices the
//! segment table without checking the fragment's length and indexes past a segment that decodes
//! short, so a malformed file panics it (found by the dicom_decode fuzz target). A fragment
//! passes when its header is whole, its offsets lie within it in order, and each segment the
//! image needs decodes (PackBits) to at least Rows × Columns bytes.

use super::DicomError;

/// An RLE fragment starts with 16 little-endian u32: the segment count, then 15 offsets.
const HEADER_LEN: usize = 64;
const MAX_SEGMENTS: usize = 15;

/// `fragments`: one per frame; `segments`: samples per pixel × bytes per sample.
pub fn check(fragments: &[impl AsRef<[u8]>], frames: usize, segments: usize, pixels: usize) -> Result<(), DicomError> {
    let corrupt = DicomError::Corrupt("its RLE pixel data is malformed");
    if fragments.len() < frames || segments > MAX_SEGMENTS {
        return Err(corrupt);
    }
    for fragment in &fragments[..frames] {
        let fragment = fragment.as_ref();
        if fragment.len() < HEADER_LEN {
            return Err(corrupt);
        }
        let word = |i: usize| {
            u32::from_le_bytes([fragment[4 * i], fragment[4 * i + 1], fragment[4 * i + 2], fragment[4 * i + 3]])
                as usize
        };
        let count = word(0);
        if count < segments || count > MAX_SEGMENTS {
            return Err(corrupt);
        }
        let mut offsets: Vec<usize> = (1..=count).map(word).collect();
        offsets.push(fragment.len());
        for pair in offsets.windows(2).take(segments) {
            let (start, end) = (pair[0], pair[1]);
            if start < HEADER_LEN || start > end || end > fragment.len() {
                return Err(corrupt);
            }
            if packbits_len(&fragment[start..end]) < pixels {
                return Err(corrupt);
            }
        }
    }
    Ok(())
}

/// How many bytes a PackBits run decodes to (PS3.5 G.3.1): a control byte n in 0..=127 copies
/// the next n + 1 bytes, -127..=-1 repeats the next byte 1 - n times, -128 does nothing.
fn packbits_len(segment: &[u8]) -> usize {
    let (mut at, mut out) = (0, 0usize);
    while at < segment.len() {
        let control = segment[at] as i8;
        at += 1;
        match control {
            0..=127 => {
                let literal = (control as usize + 1).min(segment.len() - at);
                out += literal;
                at += literal;
            }
            -127..=-1 if at < segment.len() => {
                out += (1 - i32::from(control)) as usize;
                at += 1;
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(segments: &[&[u8]]) -> Vec<u8> {
        let mut header = vec![0u8; HEADER_LEN];
        header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut offset = HEADER_LEN;
        let mut body = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            header[4 * (i + 1)..4 * (i + 2)].copy_from_slice(&(offset as u32).to_le_bytes());
            offset += segment.len();
            body.extend_from_slice(segment);
        }
        [header, body].concat()
    }

    #[test]
    fn packbits_runs_and_literals_count() {
        assert_eq!(packbits_len(&[2, 9, 9, 9]), 3);
        assert_eq!(packbits_len(&[(-3i8) as u8, 7]), 4);
        assert_eq!(packbits_len(&[0x80, 0, 1]), 1);
    }

    #[test]
    fn a_segment_that_decodes_short_or_a_torn_header_is_refused() {
        // 4 pixels, one 8-bit sample: a run of four passes, a run of three does not.
        assert_eq!(check(&[fragment(&[&[(-3i8) as u8, 5]])], 1, 1, 4), Ok(()));
        assert!(check(&[fragment(&[&[(-2i8) as u8, 5]])], 1, 1, 4).is_err());
        assert!(check(&[vec![1, 0, 0, 0]], 1, 1, 4).is_err());
        assert!(check(&[fragment(&[&[(-3i8) as u8, 5]])], 2, 1, 4).is_err(), "a frame without its fragment");
        let mut lying = fragment(&[&[(-3i8) as u8, 5]]);
        lying[4..8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(check(&[lying], 1, 1, 4).is_err());
    }
}
