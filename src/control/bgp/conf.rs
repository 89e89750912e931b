//! The BIRD configuration uvs writes, and the lines an operator adds to
//! bird.conf once. uvs owns one file (`--bgp-vips-file`): two static
//! protocols, `uvs_vips` (IPv4) and `uvs_vips6` (IPv6), each holding a
//! route per VIP announced now, through the tether (`TETHER`). The file
//! is always whole, so a BIRD that restarts reads the right set without
//! uvs; the operator's
//! `protocol bgp` exports them through the filter `uvs_export`, with the
//! director's own address as the next hop (eBGP's `next hop self`).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::Path;

/// The static protocols of the file, IPv4 and IPv6.
pub const STATIC4: &str = "uvs_vips";
pub const STATIC6: &str = "uvs_vips6";

/// The interface every route goes through: a TUN device that uvs holds
/// open while it runs (`host::sys::open_shared_tun`). The kernel deletes
/// it when uvs's descriptor closes, however uvs ended (`kill -9`, a
/// crash), and BIRD's static protocol drops a route whose interface is
/// gone: BIRD withdraws the VIPs of a dead uvs at once, though the file
/// still names them.
pub const TETHER: &str = "uvs-alive";

/// Where the file goes unless `--bgp-vips-file` says otherwise.
pub const DEFAULT_VIPS_FILE: &str = "/run/uvs/bird-vips.conf";

/// The file's text for these VIPs (none: both protocols empty, which
/// withdraws every route).
pub fn vips_file(vips: &BTreeSet<IpAddr>) -> String {
    let mut s = String::from(
        "# Written by uvs (docs/scale-out.md): the VIPs this director announces now.\n\
         # Rewritten on every change and re-read by `birdc configure`; do not edit.\n",
    );
    for (name, channel, v6) in [(STATIC4, "ipv4", false), (STATIC6, "ipv6", true)] {
        let _ = writeln!(s, "protocol static {name} {{\n  {channel};");
        for vip in vips.iter().filter(|a| a.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            let _ = writeln!(s, "  route {vip}/{len} via \"{TETHER}\";");
        }
        s.push_str("}\n");
    }
    s
}

/// What the operator adds to bird.conf, once: the include and the export
/// filter for their `protocol bgp` toward the routers.
pub fn operator_snippet(vips_file: &Path) -> String {
    format!(
        "# uvs: the VIPs this director announces (uvs writes the file).\n\
         include \"{file}\";\n\
         filter uvs_export {{\n  \
         if proto = \"{STATIC4}\" || proto = \"{STATIC6}\" then accept;\n  \
         reject;\n\
         }}\n\
         # and in each protocol bgp toward the routers:\n\
         #   ipv4 {{ import none; export filter uvs_export; }};\n\
         #   ipv6 {{ import none; export filter uvs_export; }};\n",
        file = vips_file.display()
    )
}

/// Writes the file whole: a temporary file beside it, renamed over it,
/// so BIRD never reads half of one.
pub fn write_vips_file(path: &Path, vips: &BTreeSet<IpAddr>) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, vips_file(vips))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_one_route_per_vip_in_its_family_through_the_tether() {
        let vips: BTreeSet<IpAddr> = ["198.18.0.100", "198.18.0.101", "2001:2::100"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let f = vips_file(&vips);
        let body = f
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>();
        assert_eq!(
            body,
            [
                "protocol static uvs_vips {",
                "  ipv4;",
                "  route 198.18.0.100/32 via \"uvs-alive\";",
                "  route 198.18.0.101/32 via \"uvs-alive\";",
                "}",
                "protocol static uvs_vips6 {",
                "  ipv6;",
                "  route 2001:2::100/128 via \"uvs-alive\";",
                "}",
            ]
        );
    }

    #[test]
    fn no_vips_leaves_both_protocols_empty() {
        let f = vips_file(&BTreeSet::new());
        assert!(!f.contains("route"));
        assert!(f.contains("protocol static uvs_vips {\n  ipv4;\n}\n"));
        assert!(f.contains("protocol static uvs_vips6 {\n  ipv6;\n}\n"));
    }

    /// docs/scale-out.md shows the snippet as uvs prints it.
    #[test]
    fn the_documented_snippet_is_the_generated_one() {
        let doc = include_str!("../../../docs/scale-out.md");
        let snippet = operator_snippet(Path::new(DEFAULT_VIPS_FILE));
        assert!(
            doc.contains(&snippet),
            "docs/scale-out.md lacks:\n{snippet}"
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("uvs-bird-{}", std::process::id()));
        let path = dir.join("sub/bird-vips.conf");
        let one: BTreeSet<IpAddr> = ["198.18.0.100".parse().unwrap()].into();
        write_vips_file(&path, &one).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("198.18.0.100/32")
        );
        write_vips_file(&path, &BTreeSet::new()).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("route"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
