//! Builds the XDP program (src/io/xdp/uvs.bpf.c) with clang for the BPF
//! target, to be embedded in the uvs binary. Without clang uvs still
//! builds: `--io xdp` then says why it cannot run, and `--io auto` uses
//! AF_PACKET.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/io/xdp/uvs.bpf.c";
    println!("cargo::rerun-if-changed={src}");
    println!("cargo::rerun-if-env-changed=UVS_CLANG");
    // Missing, it makes the script run again at each build until
    // libbpf-dev is installed.
    println!("cargo::rerun-if-changed=/usr/include/bpf/bpf_helpers.h");
    println!("cargo::rustc-check-cfg=cfg(uvs_xdp)");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("uvs.bpf.o");
    let clang = std::env::var("UVS_CLANG").unwrap_or_else(|_| "clang".into());
    // The kernel's UAPI headers sit under the multiarch directory, which
    // clang does not search for the BPF target.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    if !std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        println!(
            "cargo::warning=no XDP program: /usr/include/bpf/bpf_helpers.h is missing (apt install \
             libbpf-dev clang); uvs is built without AF_XDP"
        );
        return;
    }
    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-Wall", "-target", "bpf", "-I", &multiarch, "-c", src, "-o",
        ])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=uvs_xdp"),
        // A program that no longer compiles is a bug, not a missing tool.
        Ok(s) => panic!("{src} did not build: {clang} exited with {s}"),
        Err(e) => println!(
            "cargo::warning=no XDP program: {clang} not found ({e}); install clang and \
             libbpf-dev for AF_XDP; uvs is built without it"
        ),
    }
}
