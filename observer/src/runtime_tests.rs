use super::*;

use object::write::{Object as WriteObject, StandardSection};
use object::{Architecture, BinaryFormat, Endianness, SectionKind};

/// A Go 1.18+ build-information blob: header (magic, pointer size, flags, padding) and the
/// version and module strings inline, each behind its uvarint length.
fn buildinfo(flags: u8, version: &[u8]) -> Vec<u8> {
    let mut b = BUILDINFO_MAGIC.to_vec();
    b.push(8);
    b.push(flags);
    b.resize(BUILDINFO_HEADER, 0);
    b.push(u8::try_from(version.len()).unwrap());
    b.extend_from_slice(version);
    b.push(4);
    b.extend_from_slice(b"path");
    b
}

/// An ELF relocatable with the given sections (name, contents) and some code.
fn elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut obj = WriteObject::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0xc3], 1);
    for (name, data) in sections {
        let id = obj.add_section(
            Vec::new(),
            name.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        );
        obj.append_section_data(id, data, 16);
    }
    obj.write().unwrap()
}

#[test]
fn a_go_binary_with_build_information_is_go_with_its_version() {
    let image = elf(&[(".go.buildinfo", &buildinfo(2, b"go1.22.2"))]);
    assert_eq!(
        of_elf(&*image).unwrap(),
        Runtime::Go {
            version: Some("go1.22.2".into())
        }
    );
}

#[test]
fn a_go_binary_before_1_18_or_with_only_a_build_id_note_is_go_without_version() {
    let old = elf(&[(".go.buildinfo", &buildinfo(0, b"go1.17"))]);
    assert_eq!(of_elf(&*old).unwrap(), Runtime::Go { version: None });
    let note = elf(&[(".note.go.buildid", b"\x04\0\0\0")]);
    assert_eq!(of_elf(&*note).unwrap(), Runtime::Go { version: None });
}

#[test]
fn other_programs_are_other() {
    let c = elf(&[(".rodata", b"hello")]);
    assert_eq!(of_elf(&*c).unwrap(), Runtime::Other);
    // This test binary is Rust: read from disk the way `/proc/PID/exe` is.
    let me = of_file(Path::new("/proc/self/exe")).unwrap();
    assert_eq!(me, Runtime::Other);
    assert!(me.threads_are_request_context());
}

#[test]
fn what_is_not_elf_is_an_error_not_a_panic() {
    of_elf(&b"#!/bin/sh\necho hi\n"[..]).unwrap_err();
    of_elf(&b""[..]).unwrap_err();
    let e = of_file(Path::new("/nonexistent/observer-test")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/observer-test"), "{e}");
}

#[test]
fn the_version_is_found_at_a_16_byte_boundary_and_checked() {
    let mut shifted = vec![0u8; 32];
    shifted.extend(buildinfo(2, b"devel go1.24-abc"));
    assert_eq!(go_version(&shifted).as_deref(), Some("devel go1.24-abc"));
    // Not at a boundary: not build information.
    let mut odd = vec![0u8; 3];
    odd.extend(buildinfo(2, b"go1.22.2"));
    assert_eq!(go_version(&odd), None);
    // Not a version, or not text.
    assert_eq!(go_version(&buildinfo(2, b"hello")), None);
    assert_eq!(go_version(&buildinfo(2, b"go\xff1")), None);
    assert_eq!(go_version(&buildinfo(2, b"go1\n")), None);
    assert_eq!(go_version(&buildinfo(2, b"")), None);
}

#[test]
fn every_truncation_of_build_information_is_none_or_the_version() {
    let full = buildinfo(2, b"go1.22.2");
    for n in 0..full.len() {
        let v = go_version(&full[..n]);
        assert!(
            v.is_none() || v.as_deref() == Some("go1.22.2"),
            "{n}: {v:?}"
        );
    }
    // A length that runs past the end.
    let mut long = buildinfo(2, b"go1.22.2");
    long[BUILDINFO_HEADER] = 100;
    long.truncate(BUILDINFO_HEADER + 20);
    assert_eq!(go_version(&long), None);
}

#[test]
fn uvarint_reads_go_varints_and_rejects_overflow() {
    assert_eq!(uvarint(&[0x08]), Some((8, 1)));
    assert_eq!(uvarint(&[0x80, 0x01]), Some((128, 2)));
    assert_eq!(
        uvarint(&[0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()),
        Some((u64::MAX, 10))
    );
    assert_eq!(
        uvarint(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()),
        None
    );
    assert_eq!(uvarint(&[0x80]), None);
    assert_eq!(uvarint(&[]), None);
}
