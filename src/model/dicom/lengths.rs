//! A walk over a DICOM file's element headers that checks every declared value length against
//! the bytes that follow it, before dicom-rs parses the file. dicom-rs allocates (and zero-fills)
//! a value's declared length before reading it, so a 7 KB file declaring a 4 GB element would cost
//! 4 GB of memory per request (GDCM's CVE-2026-3650 is the same flaw). With this check every
//! allocation the parser makes from a length is bounded by the body's size. A deflated data set
//! is inflated here with a cap first, so a deflate bomb is refused too.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use flate2::read::DeflateDecoder;

use super::{DicomError, PREAMBLE_LEN};

const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const TRANSFER_SYNTAX: (u16, u16) = (0x0002, 0x0010);
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

#[derive(Debug, Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

const META: Encoding = Encoding { explicit: true, big_endian: false };

/// Checks the file meta group and the data set; `max_inflated` bounds a deflated data set.
pub fn check(file: &[u8], max_inflated: usize) -> Result<(), DicomError> {
    let start = PREAMBLE_LEN + 4;
    let mut walker = Walker { data: file, pos: start, encoding: META };
    let transfer_syntax = walker.meta_group()?;
    let data_set = &file[walker.pos..];
    match transfer_syntax.as_deref() {
        Some(DEFLATED) => {
            let inflated = inflate(data_set, max_inflated)?;
            Walker { data: &inflated, pos: 0, encoding: META }.data_set()
        }
        Some("1.2.840.10008.1.2") => {
            Walker { data: data_set, pos: 0, encoding: Encoding { explicit: false, big_endian: false } }.data_set()
        }
        Some("1.2.840.10008.1.2.2") => {
            Walker { data: data_set, pos: 0, encoding: Encoding { explicit: true, big_endian: true } }.data_set()
        }
        _ => Walker { data: data_set, pos: 0, encoding: META }.data_set(),
    }
}

fn inflate(compressed: &[u8], max: usize) -> Result<Vec<u8>, DicomError> {
    let mut inflated = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    DeflateDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|_| DicomError::Corrupt("its deflated data set cannot be inflated"))?;
    if inflated.len() > max {
        return Err(DicomError::Corrupt("its deflated data set inflates beyond the pixel limit"));
    }
    Ok(inflated)
}

struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
    encoding: Encoding,
}

/// The header of one element, item or delimiter.
struct Header {
    tag: (u16, u16),
    vr: Option<VR>,
    len: u32,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let bytes: [u8; 2] = self.data.get(at..at + 2)?.try_into().ok()?;
        Some(if self.encoding.big_endian { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(at..at + 4)?.try_into().ok()?;
        Some(if self.encoding.big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) })
    }

    /// The next header, or `None` where fewer bytes remain than a header needs (the parser then
    /// reports the truncation itself).
    fn header(&mut self) -> Option<Header> {
        let tag = (self.u16_at(self.pos)?, self.u16_at(self.pos + 2)?);
        if tag.0 == 0xFFFE || !self.encoding.explicit {
            let len = self.u32_at(self.pos + 4)?;
            self.pos += 8;
            let vr = if tag.0 == 0xFFFE { None } else { dictionary_vr(tag) };
            return Some(Header { tag, vr, len });
        }
        let vr_bytes: [u8; 2] = self.data.get(self.pos + 4..self.pos + 6)?.try_into().ok()?;
        // An unknown VR is read as UN (a 4-byte length after 2 reserved bytes), as dicom-rs does.
        let vr = Some(VR::from_binary(vr_bytes).unwrap_or(VR::UN));
        let long = matches!(
            vr,
            Some(
                VR::OB
                    | VR::OD
                    | VR::OF
                    | VR::OL
                    | VR::OV
                    | VR::OW
                    | VR::SQ
                    | VR::SV
                    | VR::UC
                    | VR::UN
                    | VR::UR
                    | VR::UT
                    | VR::UV
            )
        );
        let (len, header) =
            if long { (self.u32_at(self.pos + 8)?, 12) } else { (u32::from(self.u16_at(self.pos + 6)?), 8) };
        self.pos += header;
        Some(Header { tag, vr, len })
    }

    fn check_fits(&self, len: u32) -> Result<usize, DicomError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.remaining() {
            return Err(DicomError::Corrupt("an element declares more bytes than the file holds"));
        }
        Ok(len)
    }

    /// Walks group 0002 (always explicit VR little endian) and returns the transfer syntax. As
    /// dicom-object does: the group must open with its length, and elements are read whole until
    /// that many bytes have been read, which is where the data set starts.
    fn meta_group(&mut self) -> Result<Option<String>, DicomError> {
        let no_length = DicomError::Corrupt("its file meta group does not start with its length");
        let header = self.header().ok_or(no_length.clone())?;
        if header.tag != (0x0002, 0x0000) || header.len != 4 {
            return Err(no_length);
        }
        let group_length = self.u32_at(self.pos).ok_or(no_length)? as usize;
        self.pos += 4;
        let (mut read, mut transfer_syntax) = (0usize, None);
        while read < group_length {
            let before = self.pos;
            let header = self.header().ok_or(DicomError::Corrupt("its file meta group is truncated"))?;
            if header.len == UNDEFINED {
                return Err(DicomError::Corrupt("its file meta group has an element of undefined length"));
            }
            let len = self.check_fits(header.len)?;
            if header.tag == TRANSFER_SYNTAX {
                let value = &self.data[self.pos..self.pos + len];
                transfer_syntax = Some(String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_owned());
            }
            self.pos += len;
            read += self.pos - before;
        }
        Ok(transfer_syntax)
    }

    /// Walks the data set linearly, into sequences and items (whose contents are elements) but over
    /// the values of other elements and over encapsulated pixel data's fragments.
    fn data_set(&mut self) -> Result<(), DicomError> {
        let mut in_pixel_fragments = false;
        while let Some(header) = self.header() {
            match header.tag {
                (0xFFFE, 0xE000) if in_pixel_fragments => {
                    let len = self.check_fits(header.len)?;
                    self.pos += len;
                }
                (0xFFFE, 0xE000) => {
                    if header.len != UNDEFINED {
                        self.check_fits(header.len)?;
                    }
                }
                (0xFFFE, 0xE0DD) => in_pixel_fragments = false,
                (0xFFFE, _) => {}
                tag if header.len == UNDEFINED => in_pixel_fragments = tag == PIXEL_DATA,
                _ => {
                    let len = self.check_fits(header.len)?;
                    if header.vr != Some(VR::SQ) {
                        self.pos += len;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The VR an implicit-VR element has by the standard dictionary (only SQ matters here).
fn dictionary_vr((group, element): (u16, u16)) -> Option<VR> {
    match StandardDataDictionary.by_tag(Tag(group, element))?.vr() {
        VirtualVr::Exact(vr) => Some(vr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Part 10 file: preamble, magic, a transfer syntax, then `data_set`.
    fn file(transfer_syntax: &str, data_set: &[u8]) -> Vec<u8> {
        let mut uid = transfer_syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut meta = vec![0x02, 0x00, 0x10, 0x00, b'U', b'I'];
        meta.extend_from_slice(&(uid.len() as u16).to_le_bytes());
        meta.extend_from_slice(&uid);
        let mut bytes = vec![0u8; PREAMBLE_LEN];
        bytes.extend_from_slice(b"DICM");
        bytes.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&meta);
        bytes.extend_from_slice(data_set);
        bytes
    }

    /// An explicit VR little endian element with a 4-byte length.
    fn long_element(group: u16, element: u16, vr: &[u8; 2], len: u32, value: &[u8]) -> Vec<u8> {
        let mut bytes = [group.to_le_bytes(), element.to_le_bytes()].concat();
        bytes.extend_from_slice(vr);
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(value);
        bytes
    }

    #[test]
    fn a_length_beyond_the_file_is_refused_and_one_within_it_passes() {
        let honest = long_element(0x0009, 0x0010, b"OB", 4, &[1, 2, 3, 4]);
        assert_eq!(check(&file("1.2.840.10008.1.2.1", &honest), 1 << 20), Ok(()));
        let lying = long_element(0x0009, 0x0010, b"OB", 671_089_408, &[1, 2, 3, 4]);
        assert!(matches!(check(&file("1.2.840.10008.1.2.1", &lying), 1 << 20), Err(DicomError::Corrupt(_))));
    }

    #[test]
    fn sequences_are_walked_into_and_fragments_over() {
        // A sequence of undefined length whose item holds a lying element.
        let mut inner = long_element(0x0009, 0x0010, b"OB", 1 << 30, &[]);
        let mut sequence = long_element(0x0008, 0x1115, b"SQ", UNDEFINED, &[]);
        sequence.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        sequence.append(&mut inner);
        assert!(check(&file("1.2.840.10008.1.2.1", &sequence), 1 << 20).is_err());
        // Encapsulated pixel data: fragments are skipped whole, whatever their bytes say.
        let mut pixels = long_element(0x7FE0, 0x0010, b"OB", UNDEFINED, &[]);
        pixels.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        pixels.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        pixels.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(check(&file("1.2.840.10008.1.2.4.50", &pixels), 1 << 20), Ok(()));
    }

    #[test]
    fn a_deflate_bomb_is_refused() {
        use flate2::{Compression, write::DeflateEncoder};
        use std::io::Write;
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 4 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 10_000);
        assert!(check(&file(DEFLATED, &bomb), 1 << 20).is_err());
    }
}
