//! `hull-image verify`: a flipped byte in any artifact is caught and named; a
//! truncated or malformed manifest gives an error naming the field.

mod common;

use std::fs;
use std::path::Path;

use common::{fails, ok};

const ARTIFACTS: [&str; 6] = [
    "hull-agent",
    "initrd.img",
    "kernel.config",
    "rootfs.img",
    "vmlinux",
    "vmlinuz",
];

/// A build directory with every artifact (kernel files are stand-ins) and a manifest.
fn build_dir(agent: &Path, dir: &Path) {
    let rootfs = common::rootfs(agent, dir);
    fs::copy(agent, dir.join("hull-agent")).unwrap();
    fs::write(dir.join("vmlinux"), vec![0x5a; 9000]).unwrap();
    fs::write(dir.join("vmlinuz"), vec![0xa5; 5000]).unwrap();
    fs::write(dir.join("kernel.config"), b"CONFIG_RD_ZSTD=y\n").unwrap();
    fs::write(dir.join("kernel.release"), b"6.12.118-hull\n").unwrap();
    ok(&[
        &"initrd",
        &"--rootfs",
        &rootfs,
        &"--out",
        &dir.join("initrd.img"),
    ]);
    ok(&[
        &"disk",
        &"--rootfs",
        &rootfs,
        &"--out",
        &dir.join("rootfs.img"),
        &"--verity",
    ]);
    ok(&[&"manifest", &"--dir", &dir, &"--arch", &"x86_64"]);
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at % bytes.len();
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_byte_in_each_artifact_is_reported() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    if !common::have_tool("mkfs.ext4") || !common::have_tool("veritysetup") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    build_dir(&agent, d);
    ok(&[&"verify", &d]);

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["kernel"]["release"], "6.12.118-hull");
    assert_eq!(
        manifest["verity_root_hash"],
        manifest["disk"]["verity"]["tree"]["root_hash"]
    );
    assert!(manifest["cmdline"]["disk"]
        .as_str()
        .unwrap()
        .contains("dm-mod.create="));

    for name in ARTIFACTS {
        let path = d.join(name);
        let original = fs::read(&path).unwrap();
        flip_byte(&path, original.len() / 2 + 3);
        let err = fails(&[&"verify", &d]);
        assert!(err.contains(&format!("{name}: sha256")), "{name}: {err}");
        assert_eq!(
            err.matches("sha256").count(),
            1,
            "only {name} should differ: {err}"
        );
        fs::write(&path, original).unwrap();
    }
    ok(&[&"verify", &d]);
}

#[test]
fn every_mismatch_is_reported_together() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rootfs = common::rootfs(&agent, d);
    fs::copy(&agent, d.join("hull-agent")).unwrap();
    fs::write(d.join("vmlinuz"), b"kernel").unwrap();
    ok(&[
        &"initrd",
        &"--rootfs",
        &rootfs,
        &"--out",
        &d.join("initrd.img"),
    ]);
    ok(&[&"manifest", &"--dir", &d, &"--arch", &"x86_64"]);

    fs::remove_file(d.join("vmlinuz")).unwrap();
    fs::write(d.join("initrd.img"), b"short").unwrap();
    fs::write(d.join("kernel.config"), b"unlisted").unwrap();
    let err = fails(&[&"verify", &d]);
    for needle in [
        "vmlinuz: missing",
        "initrd.img: size 5",
        "kernel.config: present but not in the manifest",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
}

/// Writes `text` as the manifest and returns verify's error.
fn verify_with_manifest(d: &Path, text: &str) -> String {
    fs::write(d.join("manifest.json"), text).unwrap();
    fails(&[&"verify", &d])
}

#[test]
fn truncated_or_malformed_manifest_names_the_field() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::copy(&agent, d.join("hull-agent")).unwrap();
    fs::write(d.join("vmlinuz"), b"kernel").unwrap();
    ok(&[&"manifest", &"--dir", &d, &"--arch", &"x86_64"]);
    let good = fs::read_to_string(d.join("manifest.json")).unwrap();

    let cut = good.find("\"sha256\"").unwrap() + "\"sha256\": \"12ab".len();
    let err = verify_with_manifest(d, &good[..cut]);
    assert!(err.contains("field artifacts[0].sha256"), "{err}");

    let bad_size = good.replacen("\"size\": ", "\"size\": \"big\", \"x\": ", 1);
    let err = verify_with_manifest(d, &bad_size);
    assert!(err.contains("field artifacts[0].size"), "{err}");

    let no_arch = good.replacen("\"arch\"", "\"arc\"", 1);
    let err = verify_with_manifest(d, &no_arch);
    assert!(err.contains("arc"), "{err}");

    let version = good.replacen("\"schema_version\": 1", "\"schema_version\": 7", 1);
    let err = verify_with_manifest(d, &version);
    assert!(
        err.contains("field schema_version: unsupported version 7"),
        "{err}"
    );

    let digest = good.replacen("\"sha256\": \"", "\"sha256\": \"zz", 1);
    let err = verify_with_manifest(d, &digest);
    assert!(err.contains("field artifacts[0].sha256"), "{err}");

    let err = verify_with_manifest(d, "");
    assert!(err.contains("malformed"), "{err}");
    fs::remove_file(d.join("manifest.json")).unwrap();
    let err = fails(&[&"verify", &d]);
    assert!(err.contains("manifest.json"), "{err}");
}
